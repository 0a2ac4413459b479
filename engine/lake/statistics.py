"""Fresh planner statistics for `files` and `collection_files` after large ingests.

The ingest routes analyze both tables after their response, each once as many of its rows
changed as autovacuum waits for, instead of leaving the planner on stale sizes until
autovacuum's next look. Why: docs/architecture.md, "Ingest".
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# autovacuum's own rule (autovacuum_analyze_scale_factor 0.1), with a floor: small changes to a
# small lake leave plans as they are.
STALE_SHARE = 0.1
STALE_ROWS = 500
LOCK = (0x4D53, 0)  # the (int, int) advisory lock one analysis at a time holds
TABLES = ("files", "collection_files")  # what an ingest writes (and IngestFailure, rarely read)


def report_writes_at_commit(session: Session) -> None:
    """Have this transaction's backend report its writes to the statistics as it commits.
    A backend reports at most once a second, and a report it holds back waits until it has
    been idle 10 s: three 200-file batches of one upload could leave `changed_rows` counting
    only the first after the third, short of `STALE_ROWS`, and nothing analyzed. (PostgreSQL
    15+; a database without it, or refusing it, is left as it was, in a savepoint.)"""
    try:
        with session.begin_nested():
            session.execute(select(func.pg_stat_force_next_flush()))
    except DBAPIError as exc:
        log.debug("pg_stat_force_next_flush unavailable: %s", exc)


def changed_rows(engine: Engine) -> dict[str, tuple[int, float]]:
    """For each of `TABLES`: its rows inserted, updated or deleted since its last analysis (as
    far as the statistics collector has heard; ingests report theirs as they commit,
    `report_writes_at_commit`), and the rows the planner believes it holds (-1: never
    analyzed)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT s.relname, s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
                "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = ANY(:tables) "
                "AND s.schemaname = current_schema()"
            ),
            {"tables": list(TABLES)},
        ).all()
        connection.rollback()
    return {name: (int(changed), float(planned)) for name, changed, planned in rows}


def analyze_if_stale(engine: Engine, *, just_written: int = 0) -> list[str]:
    """ANALYZE each of `TABLES` whose rows changed since its last analysis (plus
    `just_written`, the caller's own, which the collector may not have heard of yet) reach a
    tenth of it; the tables analyzed. Skipped while another analysis holds the lock; a database
    error is logged, not raised (it runs after the response, and autovacuum catches up within
    a minute)."""
    analyzed: list[str] = []
    try:
        changed = changed_rows(engine)
        stale = [
            table
            for table in TABLES
            if table in changed and _stale(*changed[table], just_written=just_written)
        ]
        if not stale:
            return analyzed
        with engine.connect() as raw:
            connection = raw.execution_options(isolation_level="AUTOCOMMIT")
            if not connection.scalar(select(func.pg_try_advisory_lock(*LOCK))):
                return analyzed
            try:
                for table in stale:  # names from TABLES only, never user text
                    connection.execute(text(f"ANALYZE {table}"))
                    analyzed.append(table)
            finally:
                connection.scalar(select(func.pg_advisory_unlock(*LOCK)))
    except DBAPIError as exc:
        log.warning("%s not analyzed after an ingest: %s", ", ".join(TABLES), exc)
    return analyzed


def _stale(changed: int, rows: float, *, just_written: int) -> bool:
    return changed + just_written >= max(STALE_ROWS, STALE_SHARE * max(rows, 0.0))
