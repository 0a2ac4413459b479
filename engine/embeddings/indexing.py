"""The spaces' HNSW indexes: built in bulk once writes go quiet, rebuilt in bulk as a space grows.

`due_spaces` (each worker's recovery sweep) finds the spaces that need a build, `request_builds`
sends one build task each to the control queue, and `build_index` (the task) builds one under a
lock per space. Writing vectors never builds an index. Why, and how: docs/similarity.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import func, literal, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from engine.db.embeddings import Embedding, EmbeddingSpace
from engine.errors import Conflict
from sdk.schemas import EmbeddingSpaceInfo

log = logging.getLogger(__name__)

# m = 32 and ef_construction = 128, not pgvector's defaults (16, 64): on the bench's clustered
# 2048-d vectors (bench/similarity.py) HNSW graphs leave parts unreachable from the entry point,
# so now and then a search finds none of its true neighbours, whatever ef_search. These values
# made that rarer at a modest build cost; larger ones cost more build time for no gain.
# bench/README.md has the figures.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
LOCK_CLASS = 0x4D4C  # the first key of the (int, int) advisory locks of index builds
TABLE_LOCK = 0  # the second key of the lock all builds queue on (no space has id 0)
TABLE_LOCK_POLL = 0.5  # seconds between tries for it
REQUEST_RETRY = timedelta(minutes=10)


class IndexDispatcher(Protocol):
    def index(self, space_id: int) -> None: ...


def index_name(space_id: int) -> str:
    return f"ix_embeddings_hnsw_{int(space_id)}"


def index_definition(space_id: int, dim: int, *, concurrently: bool = True) -> str:
    """The CREATE INDEX statement of a space's HNSW index (ints only, never user text)."""
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{index_name(space_id)} "
        f"ON embeddings USING hnsw ((vector::halfvec({int(dim)})) halfvec_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE space_id = {int(space_id)}"
    )


def drop_index(session: Session, space: EmbeddingSpace) -> None:
    """Drop the space's HNSW index (before the space is deleted), in this transaction;
    `Conflict` while a build of it runs (the drop would wait for the build, holding up every
    read and write of `embeddings` behind its lock)."""
    if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_CLASS, space.id))):
        raise Conflict(
            f"The HNSW index of embedding space {space.name!r} is being built; "
            "retry in a few minutes.",
            space=space.name,
        )
    session.execute(text(f"DROP INDEX IF EXISTS {index_name(space.id)}"))
    session.execute(text(f"DROP INDEX IF EXISTS {index_name(space.id)}_ccnew"))


def _rows(session_or_connection: Session | Connection, space_id: int) -> int:
    return int(
        session_or_connection.scalar(
            select(func.count()).select_from(Embedding).where(Embedding.space_id == space_id)
        )
        or 0
    )


def due_spaces(
    session: Session, *, quiet_seconds: float, growth: float, min_vectors: int = 0
) -> list[int]:
    """Spaces whose index should be built now: written since their last build, quiet for
    `quiet_seconds`, and without an index (holding `min_vectors` or more) or grown by `growth`
    beyond what it covered; not requested within `REQUEST_RETRY`."""
    last_write = (
        select(func.max(Embedding.created_at))
        .where(Embedding.space_id == EmbeddingSpace.id)
        .scalar_subquery()
    )
    candidates = session.execute(
        select(EmbeddingSpace.id, EmbeddingSpace.index_name, EmbeddingSpace.indexed_rows)
        .where(
            or_(
                EmbeddingSpace.index_requested_at.is_(None),
                EmbeddingSpace.index_requested_at < func.now() - REQUEST_RETRY,
            ),
            # written (an empty space has no last write), and quiet since
            last_write < func.clock_timestamp() - timedelta(seconds=quiet_seconds),
            # and, when indexed, written since the last build
            or_(
                EmbeddingSpace.index_name.is_(None),
                EmbeddingSpace.index_built_at.is_(None),
                last_write > EmbeddingSpace.index_built_at,
            ),
        )
        .order_by(EmbeddingSpace.id)
    ).all()
    return [
        space_id
        for space_id, name, indexed in candidates
        if _rows(session, space_id)
        >= build_threshold(name is not None, indexed, min_vectors=min_vectors, growth=growth)
    ]


def build_threshold(indexed: bool, indexed_rows: int, *, min_vectors: int, growth: float) -> float:
    """How many vectors a space must hold for a build to be due: `min_vectors` for its first,
    `growth` beyond what the last build covered (`indexed_rows`) for a rebuild."""
    return (1 + growth) * max(indexed_rows, 1) if indexed else min_vectors


def request_builds(
    session: Session,
    dispatcher: IndexDispatcher,
    *,
    quiet_seconds: float,
    growth: float,
    min_vectors: int = 0,
) -> list[int]:
    """Send a build task for each due space (marking it requested, in this transaction, so
    concurrent sweeps send each once). The spaces sent."""
    due = due_spaces(session, quiet_seconds=quiet_seconds, growth=growth, min_vectors=min_vectors)
    if not due:
        return []
    sent = list(
        session.scalars(
            update(EmbeddingSpace)
            .where(
                EmbeddingSpace.id.in_(due),
                or_(
                    EmbeddingSpace.index_requested_at.is_(None),
                    EmbeddingSpace.index_requested_at < func.now() - REQUEST_RETRY,
                ),
            )
            .values(index_requested_at=func.now())
            .returning(EmbeddingSpace.id)
        )
    )
    for space_id in sent:  # inside the transaction: a broker error rolls the marks back
        dispatcher.index(space_id)
    return sent


@dataclass(frozen=True)
class Build:
    space_id: int
    index_name: str
    rows: int
    seconds: float
    rebuilt: bool


def _index_valid(connection: Connection, name: str) -> bool | None:
    """Whether the index `name` is valid; None when there is none."""
    valid: bool | None = connection.scalar(
        text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name"
        ),
        {"name": name},
    )
    return valid


def build_index(
    engine: Engine, space_id: int, *, memory: str = "1GB", workers: int = 0
) -> Build | None:
    """Build (or rebuild) the space's HNSW index in bulk; None when another build of it runs
    or the space is gone. Searches and writes go on meanwhile; vectors written during the build
    are in the index when it ends."""
    with engine.connect() as raw:
        connection = raw.execution_options(isolation_level="AUTOCOMMIT")
        if not connection.scalar(select(func.pg_try_advisory_lock(LOCK_CLASS, space_id))):
            return None
        try:
            _wait_for_the_table(connection)
            try:
                return _build(connection, space_id, memory=memory, workers=workers)
            finally:
                connection.scalar(select(func.pg_advisory_unlock(LOCK_CLASS, TABLE_LOCK)))
        finally:
            connection.scalar(select(func.pg_advisory_unlock(LOCK_CLASS, space_id)))


def _wait_for_the_table(connection: Connection) -> None:
    """Take the table's build lock once no other build holds it. PostgreSQL runs builds one at
    a time anyway (each locks the table), and overlapping ones deadlocked (module docstring).
    Polled with a try-lock, not waited for in the database: CREATE INDEX CONCURRENTLY waits
    for every transaction, and a statement waiting for the lock is one, so a build would wait
    for its waiter (a deadlock as well)."""
    while not connection.scalar(select(func.pg_try_advisory_lock(LOCK_CLASS, TABLE_LOCK))):
        time.sleep(TABLE_LOCK_POLL)


def _build(connection: Connection, space_id: int, *, memory: str, workers: int) -> Build | None:
    dim = connection.scalar(select(EmbeddingSpace.dim).where(EmbeddingSpace.id == space_id))
    if dim is None:
        return None
    name = index_name(space_id)
    connection.execute(
        select(
            func.set_config("maintenance_work_mem", memory, literal(False)),
            func.set_config("max_parallel_maintenance_workers", str(int(workers)), literal(False)),
        )
    )
    rows = _rows(connection, space_id)
    started = time.perf_counter()
    # What an interrupted REINDEX CONCURRENTLY leaves behind (an invalid copy) goes first.
    connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_ccnew"))
    valid = _index_valid(connection, name)
    if valid:
        connection.execute(text(f"REINDEX INDEX CONCURRENTLY {name}"))
    else:
        if valid is not None:  # an interrupted CREATE INDEX CONCURRENTLY
            connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
        connection.execute(text(index_definition(space_id, int(dim))))
    # Fresh statistics: a planner that still counts the space's rows as few prefers scanning
    # them to the index.
    connection.execute(text("ANALYZE embeddings"))
    seconds = time.perf_counter() - started
    connection.execute(
        update(EmbeddingSpace)
        .where(EmbeddingSpace.id == space_id)
        .values(
            index_name=name,
            indexed_rows=rows,
            index_built_at=func.now(),
            index_build_seconds=seconds,
            index_requested_at=None,
        )
    )
    log.info(
        "space %d: HNSW index %s over %d vectors in %.1f s",
        space_id,
        "rebuilt" if valid else "built",
        rows,
        seconds,
    )
    return Build(
        space_id=space_id, index_name=name, rows=rows, seconds=seconds, rebuilt=bool(valid)
    )


def build_due(
    engine: Engine, *, quiet_seconds: float = 0, growth: float = 0.5, **options: Any
) -> list[Build]:
    """Build every due space's index now, in this process (tests; workers get theirs from the
    sweep)."""
    with Session(engine) as session:
        due = due_spaces(session, quiet_seconds=quiet_seconds, growth=growth)
    return [
        build for space_id in due if (build := build_index(engine, space_id, **options)) is not None
    ]


def _building(session: Session) -> set[int]:
    """Spaces whose build holds its advisory lock now."""
    return set(
        session.scalars(
            text(
                "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :lock_class AND objsubid = 2"
            ),
            {"lock_class": LOCK_CLASS},
        )
    )


def space_info(session: Session) -> list[EmbeddingSpaceInfo]:
    """Every embedding space, its vectors and the state of its index, by name."""
    vectors = (
        select(func.count())
        .select_from(Embedding)
        .where(Embedding.space_id == EmbeddingSpace.id)
        .scalar_subquery()
    )
    building = _building(session)
    infos = []
    for space, count in session.execute(
        select(EmbeddingSpace, vectors).order_by(EmbeddingSpace.name)
    ):
        state: Literal["none", "building", "rebuilding", "ready"]
        if space.id in building:
            state = "building" if space.index_name is None else "rebuilding"
        else:
            state = "none" if space.index_name is None else "ready"
        infos.append(
            EmbeddingSpaceInfo(
                name=space.name,
                dimension=space.dim,
                vectors=int(count),
                index=state,
                indexed_vectors=space.indexed_rows,
                index_built_at=space.index_built_at,
                index_build_seconds=space.index_build_seconds,
            )
        )
    return infos
