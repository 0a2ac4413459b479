"""The gallery's pages cost a fixed number of SQL statements whatever the page holds (no N+1):
counted on the API's own database engine while a page of 3 and a page of 48 cards are served."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.api.app import create_app
from engine.config import Settings
from engine.db.models import Annotation, File, Model, ModelVersion, Tag
from engine.db.session import session_scope
from sdk import Client
from tests.conftest import serve_app
from tests.fixtures.browser import sign_in_link

pytestmark = pytest.mark.integration


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, list[str]]]:
    """The API on this test's database, and the statements its engine runs."""
    app = create_app(settings)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(app.state.db_engine, "before_cursor_execute", record)
    for url in serve_app(app):
        yield url, statements
    app.state.db_engine.dispose()


def _collection(
    url: str, key: str, folder: Path, name: str, n: int, factory: sessionmaker[Session]
) -> list[int]:
    """`n` images in collection `name`, each with two tags and three annotations."""
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (16, 12), (i % 255, 0, 0)).save(folder / f"{i:03d}.png")
    with Client(url, key) as client:
        client.upload_files_to_collection(folder, "image", name)
    with session_scope(factory) as session:
        ids = list(session.scalars(select(File.id).where(File.unique_name.like(f"{name}_%"))))
        for file_id in ids:
            session.add_all(
                [Tag(file_id=file_id, name=n, source="human") for n in ("red", name)]
                + [
                    Annotation(
                        file_id=file_id,
                        label=label,
                        shape="box",
                        geometry={"x1": 1, "y1": 1, "x2": 5, "y2": 5},
                        source=source,
                        confidence=0.5 if source == "machine" else None,
                    )
                    for label, source in (("a", "human"), ("b", "machine"), ("c", "machine"))
                ]
            )
    return ids


def _statements(browser_like: httpx.Client, statements: list[str], path: str) -> tuple[int, str]:
    statements.clear()
    answer = browser_like.get(path)
    assert answer.status_code == 200, answer.text
    return len(statements), answer.text


def test_grid_and_item_pages_cost_the_same_statements_at_any_size(
    served: tuple[str, list[str]],
    settings: Settings,
    make_key: Callable[..., str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    url, statements = served
    admin = make_key("admin")
    few = _collection(url, admin, tmp_path / "few", "few", 3, session_factory)
    many = _collection(url, admin, tmp_path / "many", "many", 60, session_factory)
    assert settings.database_url
    link = sign_in_link(url, admin, settings.database_url)
    with httpx.Client(base_url=url, follow_redirects=True) as browser_like:
        assert browser_like.get(link).status_code == 200

        small, page = _statements(browser_like, statements, "/ui/?q=collection%3Dfew")
        assert page.count('class="card"') == 3
        large, page = _statements(browser_like, statements, "/ui/?q=collection%3Dmany")
        assert page.count('class="card"') == 48
        # the session, the count, the cards, and the sidebar's six grouped counts
        assert small == large == 9
        by_score, page = _statements(
            browser_like, statements, "/ui/?q=collection%3Dmany&sort=score"
        )
        assert page.count('class="card"') == 48
        assert by_score == 9

        one, _ = _statements(browser_like, statements, f"/ui/items/{few[0]}?at=0")
        other, _ = _statements(browser_like, statements, f"/ui/items/{many[5]}?at=5")
        assert one == other <= 7


def _cards_in_order(page: str) -> list[str]:
    return re.findall(r'<span class="name">([^<]+)</span>', page)


def _sidebar_group(page: str, heading: str) -> list[str]:
    """The entries of one sidebar group, as text ("value count")."""
    group = page.split(f"<h2>{heading}</h2>", 1)[1].split("</ul>", 1)[0]
    return [
        " ".join(re.sub(r"<[^>]+>", " ", li).split())
        for li in re.findall(r"<li[^>]*>(.*?)</li>", group)
    ]


def test_sort_by_score_and_the_day_and_model_version_groups(
    served: tuple[str, list[str]],
    settings: Settings,
    make_key: Callable[..., str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """s0: a machine box at 0.2; s1: boxes at 0.9 and 0.4 (detector v1); s2: a machine tag
    at 0.95 (detector v2); s3: a human box only. s3 was uploaded on 2024-01-02."""
    url, _ = served
    admin = make_key("admin")
    folder = tmp_path / "scored"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (16, 12), (i * 40, 0, 0)).save(folder / f"s{i}.png")
    with Client(url, admin) as client:
        client.upload_files_to_collection(folder, "image", "scored")
    with session_scope(session_factory) as session:
        ids = {
            name: file_id for name, file_id in session.execute(select(File.unique_name, File.id))
        }
        model = Model(name="detector", application="autotagging")
        session.add(model)
        session.flush()
        versions = [
            ModelVersion(
                model_id=model.id, version=v, bundle_uri="file:///b", sha256="f" * 64, size_bytes=1
            )
            for v in (1, 2)
        ]
        session.add_all(versions)
        session.flush()
        box = {"x1": 1, "y1": 1, "x2": 5, "y2": 5}
        for name, confidence, source, version in (
            ("scored_s0.png", 0.2, "machine", None),
            ("scored_s1.png", 0.9, "machine", versions[0].id),
            ("scored_s1.png", 0.4, "machine", versions[0].id),
            ("scored_s3.png", None, "human", None),
        ):
            session.add(
                Annotation(
                    file_id=ids[name],
                    label="x",
                    shape="box",
                    geometry=box,
                    source=source,
                    confidence=confidence,
                    model_version_id=version,
                )
            )
        session.add(
            Tag(
                file_id=ids["scored_s2.png"],
                name="t",
                source="machine",
                confidence=0.95,
                model_version_id=versions[1].id,
            )
        )
        # a proposal counts for nothing until accepted
        session.add(
            Annotation(
                file_id=ids["scored_s0.png"],
                label="x",
                shape="box",
                geometry=box,
                source="machine",
                confidence=0.99,
                status="proposed",
            )
        )
        session.execute(
            update(File)
            .where(File.id == ids["scored_s3.png"])
            .values(uploaded_at=datetime(2024, 1, 2, 12, tzinfo=UTC))
        )
    assert settings.database_url
    link = sign_in_link(url, admin, settings.database_url)
    with httpx.Client(base_url=url, follow_redirects=True) as browser_like:
        assert browser_like.get(link).status_code == 200
        page = browser_like.get("/ui/?sort=score&order=desc").text
        assert _cards_in_order(page) == ["s2.png", "s1.png", "s0.png", "s3.png"]
        assert "score 0.95" in page
        assert "score 0.90" in page
        page = browser_like.get("/ui/?sort=score&order=asc").text
        assert _cards_in_order(page) == ["s0.png", "s1.png", "s2.png", "s3.png"]
        # an item's previous and next follow the same order
        item = browser_like.get(f"/ui/items/{ids['scored_s1.png']}?sort=score&order=desc&at=1")
        previous = re.findall(r'id="previous" rel="prev" href="/ui/items/(\d+)\?', item.text)
        after = re.findall(r'id="next" rel="next" href="/ui/items/(\d+)\?', item.text)
        assert (previous, after) == ([str(ids["scored_s2.png"])], [str(ids["scored_s0.png"])])

        page = browser_like.get("/ui/").text
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        assert _sidebar_group(page, "Uploaded (UTC day)") == [f"{today} 3", "2024-01-02 1"]
        assert _sidebar_group(page, "Model version") == ["detector v1 1", "detector v2 1"]
        # the counts follow the query
        page = browser_like.get("/ui/?q=tag%3Dt").text
        assert _sidebar_group(page, "Model version") == ["detector v2 1"]
        assert _sidebar_group(page, "Uploaded (UTC day)") == [f"{today} 1"]

        # a day's link selects that day
        grid = browser_like.get("/ui/").text
        [day_link] = re.findall(r'<a href="([^"]+)">2024-01-02</a>', grid)
        page = browser_like.get(html.unescape(day_link)).text
        assert _cards_in_order(page) == ["s3.png"]
