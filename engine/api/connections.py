"""The API's own few asynchronous database connections, for the short reads done on the event
loop: the key check of every request (`gate.Gate`), the fast search (`fast_search`), the held
job-status looks (`job_wait`).

Asynchronous (no hop to a worker thread and back), in autocommit (no BEGIN and
COMMIT), and not pinged before each use: a connection that fails is closed by its user.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

import psycopg
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from engine.db.session import connect_options, libpq_url
from engine.db.vectors import register_vector_dumper

POOL_SIZE = 4
APPLICATION_NAME = "metalake-api"  # their connections in pg_stat_activity, unless named
_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined,no-untyped-call]


@functools.lru_cache(maxsize=1024)
def sql_of(statement: Select[Any]) -> tuple[str, dict[str, Any]]:
    """A prebuilt statement (`auth.KEY_LOOKUP`, ...) as psycopg SQL text and its fixed
    parameters, to run as a prepared statement on these connections."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), dict(compiled.params)


class Connections:
    """At most `size` open connections. `take()` answers None when all are busy (the caller
    has another way: the fast search hands the request to its route); `take(wait=True)` waits
    for one to be given back."""

    def __init__(
        self, url: str, size: int = POOL_SIZE, application_name: str = APPLICATION_NAME
    ) -> None:
        self.url = libpq_url(url)
        self.size = size  # at most this many open
        self.application_name = application_name
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.open = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def take(self, *, wait: bool = False) -> psycopg.AsyncConnection[Any] | None:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # connections wait on their event loop's sockets
            await self.close_idle()
            self.loop = loop
            self.waiters.clear()
        while not self.idle and self.open >= self.size:
            if not wait:
                return None
            await self._wait_for_one(loop)
        if self.idle:
            return self.idle.pop()
        self.open += 1
        try:
            connection = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                options=connect_options(),
                application_name=self.application_name,
            )
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise
        register_vector_dumper(connection)
        return connection

    async def _wait_for_one(self, loop: asyncio.AbstractEventLoop) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, then cancelled: the turn passes on
            elif waiter in self.waiters:
                self.waiters.remove(waiter)
            raise

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def give(self, connection: psycopg.AsyncConnection[Any], healthy: bool) -> None:
        if (
            healthy
            and not connection.closed
            and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            self.idle.append(connection)
        else:
            self.open -= 1
            await connection.close()
        self._wake_one()

    async def close_idle(self) -> None:
        """Close the idle connections (at shutdown, or left by another event loop)."""
        while self.idle:
            self.open -= 1
            await self.idle.pop().close()
