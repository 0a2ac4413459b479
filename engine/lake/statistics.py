"""Fresh planner statistics for `files` after large ingests.

PostgreSQL's autovacuum analyzes a table once a tenth of it has changed, but it looks once a
minute (`autovacuum_naptime`). Until then the planner works from what the table held before:
right after a lake grew from 1,000 to 10,000 files (bench/similarity.py, never analyzed), a
metadata filter matching 100 of them was planned as a sequential scan of all 10,000 (9 ms,
twice per filtered similarity search) where the GIN index answers in 0.3 ms; every query and
filter of the lake meets the same plans. The ingest routes therefore analyze `files` after their
response, once as many rows changed as autovacuum waits for.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# autovacuum's own rule (autovacuum_analyze_scale_factor 0.1), with a floor: small changes to a
# small lake leave plans as they are.
STALE_SHARE = 0.1
STALE_ROWS = 500
LOCK = (0x4D53, 0)  # the (int, int) advisory lock one analysis at a time holds


def changed_rows(engine: Engine) -> tuple[int, float]:
    """Rows of `files` inserted, updated or deleted since its last analysis (as far as the
    statistics collector has heard: a backend reports within about a second), and the rows the
    planner believes it holds (-1: never analyzed)."""
    with engine.connect() as connection:
        changed, rows = connection.execute(text(
            "SELECT s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relid = 'files'::regclass")).one()
        connection.rollback()
    return int(changed), float(rows)


def analyze_if_stale(engine: Engine, *, just_written: int = 0) -> bool:
    """ANALYZE `files` when the rows changed since its last analysis (plus `just_written`, the
    caller's own, which the collector may not have heard of yet) reach a tenth of the table;
    whether it ran. Skipped while another analysis holds the lock; a database error is logged,
    not raised (it runs after the response, and autovacuum catches up within a minute)."""
    try:
        changed, rows = changed_rows(engine)
        if changed + just_written < max(STALE_ROWS, STALE_SHARE * max(rows, 0.0)):
            return False
        with engine.connect() as raw:
            connection = raw.execution_options(isolation_level="AUTOCOMMIT")
            if not connection.scalar(select(func.pg_try_advisory_lock(*LOCK))):
                return False
            try:
                connection.execute(text("ANALYZE files"))
            finally:
                connection.scalar(select(func.pg_advisory_unlock(*LOCK)))
    except DBAPIError as exc:
        log.warning("files not analyzed after an ingest: %s", exc)
        return False
    return True
