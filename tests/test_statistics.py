"""The planner's statistics of `files` and `collection_files` are brought up to date after
large ingests (engine/lake/statistics.py), not a minute later by autovacuum: the ingest route
analyzes each table after its response once a tenth of it changed, and leaves them alone after
small ones."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.lake import statistics
from engine.storage import file_uri
from tests.fixtures import imagegen
from tests.fixtures.embedding_factory import make_files


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"managed_storage_url": file_uri(tmp_path / "managed")})


def _placeholders(folder: Path, count: int, start: int = 0) -> Path:
    """`count` small distinct JPEGs."""
    for i in range(start, start + count):
        imagegen.image(folder / f"f{i:05d}.jpg", (8, 8), seed=i)
    return folder


def _analyzed(session: Session, table: str = "files") -> tuple[Any, float]:
    """When `table` was last analyzed by a statement (not autovacuum), and its planner rows."""
    session.rollback()
    row = session.execute(
        text(
            "SELECT s.last_analyze, c.reltuples FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relid = to_regclass(:t)"
        ),
        {"t": table},
    ).one()
    session.rollback()
    return row[0], float(row[1])


def test_a_large_ingest_analyzes_files_and_a_small_one_does_not(
    client: Any, session: Session, tmp_path: Path
) -> None:
    # Autovacuum off for the two tables of this test's database: an autoanalyze landing in the
    # 20 s below leaves nothing stale for the engine to analyze (CI saw it once).
    for table in statistics.TABLES:
        session.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    session.commit()
    assert _analyzed(session)[0] is None
    assert _analyzed(session, "collection_files")[0] is None
    client.upload_files_to_collection(
        _placeholders(tmp_path / "big", 600), "image", "big", {"shard": "s1"}
    )
    deadline = time.monotonic() + 20
    while (analyzed := _analyzed(session))[0] is None and time.monotonic() < deadline:
        time.sleep(0.2)  # after the response: a background task
    last, rows = analyzed
    assert last is not None, "files was not analyzed after 600 files were ingested"
    # The SDK uploads 200 at a time: the planner is at most one batch (under the floor) behind.
    assert 600 - statistics.STALE_ROWS < rows <= 600
    links_analyzed, links = _analyzed(session, "collection_files")  # a link per file
    assert links_analyzed is not None
    assert 600 - statistics.STALE_ROWS < links <= 600

    client.upload_files_to_collection(
        _placeholders(tmp_path / "small", 20, start=600), "image", "small"
    )
    time.sleep(1)
    assert _analyzed(session)[0] == last  # few changed since, under the 500-row floor
    assert statistics.analyze_if_stale(session.get_bind()) == []
    # with as many rows again as the caller says it wrote, and not yet counted: analyzed
    assert statistics.analyze_if_stale(session.get_bind(), just_written=500) == [
        "files",
        "collection_files",
    ]
    assert _analyzed(session)[1] == 620
    assert _analyzed(session, "collection_files")[1] == 620


def test_an_ingest_reports_its_writes_as_it_commits(session: Session) -> None:
    """A backend reports its writes at most once a second and holds the rest back until it has
    been idle 10 s; an ingest's transaction asks for its report as it commits, so the check
    after its response counts it (three batches of one upload within a second did not)."""
    engine = session.get_bind()

    def changed() -> int:
        return statistics.changed_rows(engine)["files"][0]

    before = changed()
    with engine.connect() as connection, Session(bind=connection) as writer:
        make_files(writer, "first", 10)  # this backend's first report goes out as it commits
        statistics.report_writes_at_commit(writer)
        make_files(writer, "second", 10)  # within the second: held back, but for the request
        assert changed() == before + 20
