"""Reviewing a preview job's proposals in a real headless Chromium: one image at a time, A
accepts and R rejects that image's proposals, and the API then shows them applied or gone."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.jobs import Job
from engine.db.models import Annotation, File
from engine.db.session import session_scope
from sdk import Client
from tests.fixtures.browser import screenshot, sign_in_link, unlabelled

pytestmark = pytest.mark.integration
BOX = {"x1": 20, "y1": 30, "x2": 120, "y2": 100}


@pytest.fixture
def preview_job(client: Client, tmp_path: Path, session_factory: sessionmaker[Session]) -> int:
    """A finished preview auto_annotation job that proposed a circle on rev_a.png and a square
    on rev_b.png (written as its worker would); rev_c.png got nothing."""
    folder = tmp_path / "rev"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (160, 120), (60, 60, 60)).save(folder / name)
    client.upload_files_to_collection(folder, "image", "rev")
    client.add_annotations("rev_a.png", [{"label": "person", "shape": "box", "geometry": BOX}])
    with session_scope(session_factory) as session:
        job = Job(kind="auto_annotation", platform="local", status="succeeded", total=3, done=3)
        session.add(job)
        session.flush()
        ids = {n: i for n, i in session.execute(select(File.unique_name, File.id))}
        for name, label, confidence in (("rev_a.png", "circle", 0.8), ("rev_b.png", "square", 0.6)):
            session.add(
                Annotation(
                    file_id=ids[name],
                    label=label,
                    shape="box",
                    geometry=BOX,
                    confidence=confidence,
                    source="machine",
                    status="proposed",
                    job_id=job.id,
                )
            )
        return job.id


def test_proposals_are_accepted_and_rejected_one_image_at_a_time(
    page: Page,
    api_url: str,
    admin_key: str,
    settings: Settings,
    client: Client,
    preview_job: int,
) -> None:
    assert settings.database_url
    page.goto(sign_in_link(api_url, admin_key, settings.database_url))
    page.goto(f"{api_url}/ui/jobs/{preview_job}")
    page.get_by_role("link", name="Review its proposals").click()
    expect(page.locator("#left")).to_have_text("2")
    expect(page.locator("p.total")).to_contain_text("rev_a.png")
    assert page.locator("rect.proposed").count() == 1
    assert page.locator("rect.human").count() == 1  # the applied box is shown too
    assert page.locator("#min-confidence").count() == 1
    assert unlabelled(page) == []
    screenshot(page, "review")

    page.locator("body").click()
    page.keyboard.press("a")
    expect(page.locator("#left")).to_have_text("1")
    expect(page.locator("p.total")).to_contain_text("rev_b.png")
    decided = {(a.label, a.status) for a in client.list_annotations("rev_a.png")}
    assert decided == {("person", "applied"), ("circle", "applied")}

    page.locator("body").click()
    page.keyboard.press("r")
    expect(page.locator("p.total")).to_contain_text("No proposals left")
    assert client.list_annotations("rev_b.png") == []
    screenshot(page, "review-done")


def test_a_read_key_reviews_but_cannot_decide(
    page: Page,
    api_url: str,
    make_key: object,
    settings: Settings,
    client: Client,
    preview_job: int,
) -> None:
    assert settings.database_url
    assert callable(make_key)
    page.goto(sign_in_link(api_url, make_key("read", name="reader"), settings.database_url))
    page.goto(f"{api_url}/ui/jobs/{preview_job}/review")
    expect(page.locator("#left")).to_have_text("2")
    assert page.locator("#accept").count() == 0
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    file_id = client.get_item_list_from_collection(client.collection_id("rev"))[0]["id"]
    refused = page.request.post(
        f"{api_url}/ui/jobs/{preview_job}/review/{file_id}/accept",
        form={"csrf_token": csrf, "at": "0"},
    )
    assert refused.status == 403
    assert {a.status for a in client.list_annotations("rev_a.png")} == {"applied", "proposed"}


def test_accept_all_above_the_slider(
    page: Page,
    api_url: str,
    admin_key: str,
    settings: Settings,
    client: Client,
    preview_job: int,
) -> None:
    assert settings.database_url
    page.goto(sign_in_link(api_url, admin_key, settings.database_url))
    page.goto(f"{api_url}/ui/jobs/{preview_job}/review")
    page.locator("#confidence").fill("0.7")
    expect(page.locator("#min-confidence")).to_have_value("0.70")
    page.get_by_role("button", name="Accept all above").click()
    expect(page.locator("#left")).to_have_text("1")  # the 0.6 square is still to decide
    expect(page.locator("p.total")).to_contain_text("rev_b.png")
    assert {(a.label, a.status) for a in client.list_annotations("rev_a.png")} == {
        ("person", "applied"),
        ("circle", "applied"),
    }
    assert [(a.label, a.status) for a in client.list_annotations("rev_b.png")] == [
        ("square", "proposed")
    ]


def test_the_last_decision_is_undone(
    page: Page,
    api_url: str,
    admin_key: str,
    settings: Settings,
    client: Client,
    preview_job: int,
) -> None:
    assert settings.database_url
    page.goto(sign_in_link(api_url, admin_key, settings.database_url))
    page.goto(f"{api_url}/ui/jobs/{preview_job}/review")
    assert page.locator("#undo").count() == 0  # nothing decided yet

    page.locator("body").click()
    page.keyboard.press("a")
    expect(page.locator("#left")).to_have_text("1")
    page.locator("body").click()
    page.keyboard.press("u")
    expect(page.locator("#left")).to_have_text("2")
    assert {(a.label, a.status) for a in client.list_annotations("rev_a.png")} == {
        ("person", "applied"),
        ("circle", "proposed"),
    }
    assert page.locator("#undo").count() == 0  # undone once: nothing left to undo

    page.get_by_role("link", name="Next →").click()
    expect(page.locator("p.total")).to_contain_text("rev_b.png")
    page.locator("body").click()
    page.keyboard.press("r")
    expect(page.locator("#left")).to_have_text("1")
    assert client.list_annotations("rev_b.png") == []
    page.get_by_role("button", name="Undo the last decision (U)").click()
    expect(page.locator("#left")).to_have_text("2")
    [back] = client.list_annotations("rev_b.png")
    assert (back.label, back.status, back.confidence, back.source) == (
        "square",
        "proposed",
        0.6,
        "machine",
    )
    assert back.geometry == BOX
    expect(page.locator("#left")).to_have_text("2")
    screenshot(page, "review-undone")
