"""Bulk-built HNSW indexes (engine/embeddings/indexing.py) on real PostgreSQL + pgvector: writes
never build one; a space is due once its writes go quiet, and again once it outgrows its last
build; one build at a time per space, and no drop during one (deleting the model:
tests/test_embeddings.py); leftovers of an interrupted build are replaced; a real
worker's sweep builds it; searches are exact until then and use the index after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.embeddings import EmbeddingSpace
from engine.embeddings import indexing
from engine.embeddings.indexing import build_due, build_index, due_spaces, index_name
from tests.fixtures.embedding_factory import make_files
from tests.fixtures.worker import running_worker, settings, shared_envs_dir  # noqa: F401

DIM = 16


def _insert(client: Any, names: list[str], vectors: np.ndarray, space: str = "ext") -> None:
    client.insert_image_embeddings(
        [{"uniqueName": n, "embeddings": v} for n, v in zip(names, vectors, strict=True)],
        space,
        [DIM],
    )


def _space(session: Session, name: str = "ext") -> EmbeddingSpace:
    session.rollback()
    return session.scalars(select(EmbeddingSpace).where(EmbeddingSpace.name == name)).one()


def _method(client: Any, query: np.ndarray, space: str = "ext") -> str:
    response = client._http.post(
        "/search/similar", json={"vector": query.tolist(), "model_name": space, "k": 5}
    )
    assert response.status_code == 200, response.text
    method: str = response.json()["method"]
    return method


def _info(client: Any, space: str = "ext") -> dict[str, Any]:
    return next(s for s in client.list_embedding_spaces() if s["name"] == space)


@contextmanager
def building(engine: Engine, space_id: int) -> Iterator[None]:
    """Hold the space's build lock from another connection, as a running build does (with
    `indexing.TABLE_LOCK`: the lock every build takes while it runs)."""
    with engine.connect() as other:
        assert other.scalar(
            text("SELECT pg_try_advisory_lock(:c, :s)"), {"c": indexing.LOCK_CLASS, "s": space_id}
        )
        yield
        other.scalar(
            text("SELECT pg_advisory_unlock(:c, :s)"), {"c": indexing.LOCK_CLASS, "s": space_id}
        )


def _valid(session: Session, name: str) -> bool | None:
    session.rollback()
    valid: bool | None = session.scalar(
        text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :n"
        ),
        {"n": name},
    )
    session.rollback()
    return valid


def _build(session: Session) -> list[indexing.Build]:
    # A transaction left open would hold the build up: CREATE INDEX CONCURRENTLY waits for it.
    session.rollback()
    return build_due(session.get_bind())


def test_the_index_is_built_in_bulk_once_writes_go_quiet_and_rebuilt_as_the_space_grows(
    client: Any, session: Session
) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.random((500, DIM))
    names = make_files(session, "grow", 500)
    _insert(client, names[:100], vectors[:100])

    # Written, not indexed: searches scan exactly, and find the exact neighbour.
    space = _space(session)
    assert space.index_name is None
    assert _info(client)["index"] == "none"
    assert _method(client, vectors[7]) == "exact"
    assert (
        client.get_similar_items(vector=vectors[7], model_name="ext", k=1)[0]["unique_name"]
        == names[7]
    )
    # Not quiet for an hour: not due; quiet for 0 s: due.
    assert due_spaces(session, quiet_seconds=3600, growth=0.5) == []
    assert due_spaces(session, quiet_seconds=0, growth=0.5) == [space.id]
    # A first build waits for the space to hold min_vectors.
    assert due_spaces(session, quiet_seconds=0, growth=0.5, min_vectors=101) == []
    assert due_spaces(session, quiet_seconds=0, growth=0.5, min_vectors=100) == [space.id]

    [build] = _build(session)
    assert (build.rows, build.rebuilt, build.index_name) == (100, False, index_name(space.id))
    assert _valid(session, build.index_name) is True
    info = _info(client)
    assert (info["index"], info["vectors"], info["indexed_vectors"]) == ("ready", 100, 100)
    assert info["index_built_at"] is not None
    assert info["index_build_seconds"] > 0
    assert _method(client, vectors[7]) == "index"
    assert due_spaces(session, quiet_seconds=0, growth=0.5) == []  # nothing new

    # 40% more: added to the index one by one (found at once), not yet due for a rebuild.
    _insert(client, names[100:140], vectors[100:140])
    assert due_spaces(session, quiet_seconds=0, growth=0.5) == []
    assert (
        client.get_similar_items(vector=vectors[120], model_name="ext", k=1)[0]["unique_name"]
        == names[120]
    )
    # 50% more than the build covered: due; rebuilt concurrently under the same name.
    _insert(client, names[140:150], vectors[140:150])
    assert due_spaces(session, quiet_seconds=0, growth=0.5) == [space.id]
    [build] = _build(session)
    assert (build.rows, build.rebuilt) == (150, True)
    assert _valid(session, index_name(space.id)) is True
    assert _space(session).indexed_rows == 150
    assert _info(client)["indexed_vectors"] == 150
    found = client.get_similar_items(vector=vectors[149], model_name="ext", k=1)
    assert found[0]["unique_name"] == names[149]


def test_one_build_per_space_at_a_time_and_no_drop_during_a_build(
    client: Any, session: Session
) -> None:
    names = make_files(session, "locked", 20)
    _insert(client, names, np.random.default_rng(4).random((20, DIM)))
    space = _space(session)
    engine = session.get_bind()
    with building(engine, space.id):
        assert build_index(engine, space.id) is None
        assert _info(client)["index"] == "building"
        with pytest.raises(Exception, match="being built"):
            indexing.drop_index(session, space)
        session.rollback()
    assert _space(session).index_name is None
    space_id = space.id
    session.rollback()  # (which expires `space`: reading space.id now would begin another)
    build = build_index(engine, space_id)
    assert build is not None
    assert build.rows == 20


def test_builds_of_two_spaces_queue_one_behind_the_other(client: Any, session: Session) -> None:
    # Run at once, CREATE INDEX CONCURRENTLY of one space and the ANALYZE closing another's
    # build deadlocked, failing one build (seen with two spaces written together).
    rng = np.random.default_rng(5)
    for space in ("first", "second"):
        names = make_files(session, f"queued_{space}", 30)
        _insert(client, names, rng.random((30, DIM)), space)
    first, second = _space(session, "first").id, _space(session, "second").id
    session.rollback()
    engine = session.get_bind()
    with ThreadPoolExecutor(2) as pool:
        with building(engine, indexing.TABLE_LOCK):
            builds = [pool.submit(build_index, engine, space_id) for space_id in (first, second)]
            time.sleep(1.5)
            assert not any(build.done() for build in builds)  # both wait their turn
            assert {s["name"]: s["index"] for s in client.list_embedding_spaces()} == {
                "first": "building",
                "second": "building",
            }
        results = [build.result(timeout=60) for build in builds]
    assert [(r.space_id, r.rows) for r in results if r is not None] == [(first, 30), (second, 30)]
    assert _valid(session, index_name(first))
    assert _valid(session, index_name(second))


def test_leftovers_of_an_interrupted_build_are_replaced(client: Any, session: Session) -> None:
    names = make_files(session, "left", 30)
    _insert(client, names, np.random.default_rng(5).random((30, DIM)))
    space = _space(session)
    space_id, name = space.id, index_name(space.id)
    # What a killed CREATE INDEX CONCURRENTLY leaves: an invalid index of the final name;
    # what a killed REINDEX CONCURRENTLY leaves: an invalid `_ccnew` copy.
    session.execute(text(indexing.index_definition(space.id, DIM, concurrently=False)))
    session.execute(text(f"CREATE INDEX {name}_ccnew ON embeddings (id)"))
    session.execute(
        text(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid IN "
            f"('{name}'::regclass, '{name}_ccnew'::regclass)"
        )
    )
    session.commit()
    assert _valid(session, name) is False
    build = build_index(session.get_bind(), space_id)  # (_valid ended its transaction)
    assert build is not None
    assert not build.rebuilt
    assert _valid(session, name) is True
    assert _valid(session, f"{name}_ccnew") is None


def test_a_build_request_is_sent_once_and_again_only_after_it_was_lost(session: Session) -> None:
    make_files(session, "req", 3)
    session.execute(
        text(
            "INSERT INTO embedding_spaces (name, dim) VALUES ('req', 2);"
            "INSERT INTO embeddings (space_id, file_id, vector) "
            "SELECT s.id, f.id, '[1,2]' FROM embedding_spaces s, files f"
        )
    )
    session.commit()
    space_id = _space(session, "req").id

    class Sent:
        def __init__(self) -> None:
            self.spaces: list[int] = []

        def index(self, space_id: int) -> None:
            self.spaces.append(space_id)

    sent = Sent()
    assert indexing.request_builds(session, sent, quiet_seconds=0, growth=0.5) == [space_id]
    session.commit()
    assert indexing.request_builds(session, sent, quiet_seconds=0, growth=0.5) == []
    session.commit()
    assert sent.spaces == [space_id]
    # The request was lost with the broker: sent again once REQUEST_RETRY has passed.
    session.execute(
        update(EmbeddingSpace).values(
            index_requested_at=EmbeddingSpace.index_requested_at
            - indexing.REQUEST_RETRY
            - timedelta(seconds=1)
        )
    )
    assert indexing.request_builds(session, sent, quiet_seconds=0, growth=0.5) == [space_id]
    session.commit()
    assert sent.spaces == [space_id, space_id]


def test_a_workers_sweep_builds_the_index_of_a_quiet_space(
    client: Any, session: Session, settings: Settings, tmp_path: Any
) -> None:
    rng = np.random.default_rng(6)
    vectors = rng.random((200, DIM))
    names = make_files(session, "swept", 200)
    _insert(client, names, vectors)
    assert _method(client, vectors[3]) == "exact"
    quick = settings.model_copy(
        update={"recovery_interval": 0.5, "index_quiet_seconds": 0.5, "index_min_vectors": 200}
    )
    with running_worker(
        quick.model_copy(update={"index_min_vectors": 201}), tmp_path / "small.log"
    ):
        time.sleep(4)  # quiet, swept ~8 times, and one vector short of index_min_vectors
        assert _info(client)["index"] == "none"
    assert "HNSW index" not in (tmp_path / "small.log").read_text()
    with running_worker(quick, tmp_path / "worker.log"):
        deadline = time.monotonic() + 60
        while _info(client)["index"] != "ready":
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
    assert _info(client)["indexed_vectors"] == 200
    assert _method(client, vectors[3]) == "index"
    assert (
        client.get_similar_items(vector=vectors[3], model_name="ext", k=1)[0]["unique_name"]
        == names[3]
    )
    assert "HNSW index built over 200 vectors" in (tmp_path / "worker.log").read_text()
