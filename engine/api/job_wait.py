"""Held answers of GET /jobs/{job_id}?wait= (long polling, `wait_for_job`).

A held request looks at the job's status every `WAIT_CHECK` seconds on an asynchronous
connection of the API's own (`connections.Connections`, in autocommit, a prepared one-row
read), at a fraction of the API's CPU that a look through a pooled SQLAlchemy session and a
thread-pool hop took, or an SDK poll of the whole job (figures in bench/README.md).
"""

from __future__ import annotations

import asyncio
import time

import psycopg
from starlette.requests import Request

from engine.api.connections import Connections
from sdk.schemas import FINISHED_JOB_STATUSES

WAIT_CHECK = 0.1  # seconds between a held request's looks at the job's status
POOL_SIZE = 2  # connections for the looks; when both are busy, a look waits for the next tick
_STATUS = "SELECT status FROM jobs WHERE id = %s"


async def _stop_holding(connections: Connections, job_id: int) -> bool | None:
    """True when the held answer should go now: the job has finished (or gone), or the look
    failed (its connection is closed), so the caller reads the job the regular way, which
    reports the database's error as every route does. False: the job is still unfinished.
    None: no connection free now; look at the next tick."""
    try:
        connection = await connections.take()
    except psycopg.Error:
        return True
    if connection is None:
        return None
    try:
        cursor = await connection.execute(_STATUS, (job_id,), prepare=True)
        row = await cursor.fetchone()
    except psycopg.Error:
        await connections.give(connection, healthy=False)
        return True
    except BaseException:
        await connections.give(connection, healthy=False)
        raise
    await connections.give(connection, healthy=True)
    return row is None or row[0] in FINISHED_JOB_STATUSES


async def hold(request: Request, job_id: int, seconds: float) -> None:
    """Return once the job has finished, `seconds` have passed, or the client has gone."""
    connections: Connections = request.app.state.status_connections
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(WAIT_CHECK, left))
        if await request.is_disconnected() or await _stop_holding(connections, job_id):
            return


def status_connections(database_url: str) -> Connections:
    return Connections(database_url, size=POOL_SIZE, application_name="metalake-job-wait")
