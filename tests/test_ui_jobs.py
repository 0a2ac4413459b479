"""The gallery's jobs pages in a real headless Chromium: a queued job (no worker runs it) is
listed with its progress, and cancelled from its page; the API then says it is cancelled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.jobs import Job
from engine.db.session import session_scope
from sdk import Client
from tests.fixtures.browser import screenshot, sign_in_link
from tests.fixtures.bundle_factory import make_bundle

pytestmark = pytest.mark.integration


@pytest.fixture
def queued_job(client: Client, tmp_path: Path) -> int:
    """An autotagging job over two images, queued: no worker takes it."""
    folder = tmp_path / "pics"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 24), (10, 200, 30)).save(folder / name)
    collection_id = client.upload_files_to_collection(folder, "image", "pics")
    client.register_model(make_bundle(tmp_path / "bundle"), "shapes", "autotagging")
    job = client.auto_tag_collection(collection_id, "shapes")
    return int(job["job_id"])


def test_a_job_is_listed_and_cancelled_from_its_page(
    page: Page,
    api_url: str,
    admin_key: str,
    settings: Settings,
    client: Client,
    queued_job: int,
    session_factory: sessionmaker[Session],
) -> None:
    assert settings.database_url
    page.goto(sign_in_link(api_url, admin_key, settings.database_url))
    page.get_by_role("link", name="Jobs").click()
    row = page.locator(f"tr[data-job='{queued_job}']")
    expect(row.locator(".status")).to_have_text("queued")
    expect(row).to_contain_text("autotagging")
    expect(row).to_contain_text("shapes@1")
    expect(row.locator(".total")).to_have_text("2")
    with session_scope(session_factory) as session:  # as a worker would record progress
        session.execute(update(Job).where(Job.id == queued_job).values(done=1, status="running"))
    expect(row.locator(".done")).to_have_text("1")  # polled, not reloaded
    expect(row.locator(".status")).to_have_text("running")
    screenshot(page, "jobs")

    row.get_by_role("link", name=str(queued_job)).click()
    expect(page.locator("h1")).to_have_text(f"Job {queued_job}: autotagging")
    page.get_by_role("button", name="Cancel the job").click()
    expect(page.locator(".status")).to_have_text("cancelled")
    assert client.get_job(queued_job)["status"] == "cancelled"
    assert page.get_by_role("button", name="Cancel the job").count() == 0
    screenshot(page, "job-cancelled")


def test_job_writes_need_a_write_key_and_the_csrf_token(
    page: Page,
    api_url: str,
    make_key: Callable[..., str],
    settings: Settings,
    client: Client,
    queued_job: int,
) -> None:
    assert settings.database_url
    page.goto(sign_in_link(api_url, make_key("read", name="reader"), settings.database_url))
    page.goto(f"{api_url}/ui/jobs/{queued_job}")
    assert page.get_by_role("button", name="Cancel the job").count() == 0
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    refused = page.request.post(f"{api_url}/ui/jobs/{queued_job}/cancel", form={"csrf_token": csrf})
    assert refused.status == 403

    page.goto(sign_in_link(api_url, make_key("write", name="writer"), settings.database_url))
    forged = page.request.post(
        f"{api_url}/ui/jobs/{queued_job}/cancel", form={"csrf_token": "guess"}
    )
    assert forged.status == 403
    assert client.get_job(queued_job)["status"] == "queued"

    progress = page.request.get(f"{api_url}/ui/jobs/progress?ids={queued_job},999")
    assert progress.json() == [
        {
            "id": queued_job,
            "status": "queued",
            "total": 2,
            "done": 0,
            "failed": 0,
            "finished": False,
        }
    ]
    assert page.request.get(f"{api_url}/ui/jobs/progress?ids=1;DROP").status == 400
    assert httpx.get(f"{api_url}/ui/jobs/progress?ids={queued_job}").status_code == 401
