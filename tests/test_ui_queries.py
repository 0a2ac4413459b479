"""The gallery's pages cost a fixed number of SQL statements whatever the page holds (no N+1):
counted on the API's own database engine while a page of 3 and a page of 48 cards are served."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from engine.api.app import create_app
from engine.config import Settings
from engine.db.models import Annotation, File, Tag
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
        # the session, the count, the cards, and the sidebar's four grouped counts
        assert small == large == 7

        one, _ = _statements(browser_like, statements, f"/ui/items/{few[0]}?at=0")
        other, _ = _statements(browser_like, statements, f"/ui/items/{many[5]}?at=5")
        assert one == other <= 7
