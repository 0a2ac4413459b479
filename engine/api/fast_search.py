"""The common similarity search, answered before FastAPI's routing: an unfiltered search by
vector of an indexed space, with a valid key.

Measured at 100,000 2048-d vectors through the SDK, alternating with the regular route on the
same database: p50 6.0-6.3 / p95 8.0-8.3 ms against 7.7-8.2 / 10.4-10.6 ms (bench/README.md).
The regular route spends ~3 ms around pgvector's own ~2.7 ms: matching ~50 routes, solving
dependencies, and the key lookup, space lookup, search and commit each going through
SQLAlchemy's execution layer.

This path runs the same prebuilt statements (`auth.KEY_LOOKUP`, `spaces.NAMED_SPACE`,
`search.plain_index_query`) on the pooled connection's psycopg cursor, as prepared statements,
in one transaction. It answers only what it can answer exactly as the route would; anything else (a
filter, a search by file, k above ef_search, a space without an index, a key to record as used,
any invalid or unknown input) is handed to the route untouched, with its body, so every answer
and every error keeps one definition.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from engine import auth
from engine.db.session import HNSW_EF_SEARCH
from engine.embeddings import search, spaces, store
from engine.registry.store import DEFAULT
from sdk.schemas import SimilarItems, SimilarityQuery

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1 << 20  # a 4,000-d vector is ~80 KB of JSON; larger bodies go to the route unread
_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined,no-untyped-call]


@functools.lru_cache(maxsize=1024)
def _sql(statement: Select[Any]) -> tuple[str, dict[str, Any]]:
    """A prebuilt statement as psycopg SQL text and its fixed parameters."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), dict(compiled.params)


def _search(db: Engine, key: str, request: SimilarityQuery) -> SimilarItems | None:
    """The search, or None when the regular route must answer."""
    connection = db.raw_connection()  # pooled, pinged, binary vectors registered
    try:
        cursor = connection.driver_connection.cursor()  # type: ignore[union-attr]
        sql, params = _sql(auth.KEY_LOOKUP)
        key_row = cursor.execute(sql, {**params, "key_hash": auth.hash_key(key)},
                                 prepare=True).fetchone()
        if key_row is None:
            return None  # the route answers 401
        key_id, name, scopes, last_used = key_row
        principal = auth.Principal(key_id=key_id, name=name, scopes=frozenset(scopes))
        if not principal.has("read") or auth.use_to_record(last_used, datetime.now(UTC)):
            return None  # a 403, or a use to record: the route does both
        sql, params = _sql(spaces.NAMED_SPACE)
        cursor.execute(sql, {**params, "model_name": request.model_name}, prepare=True)
        space_row = cursor.fetchone()
        if space_row is None:
            return None
        space = dict(zip((column.name for column in cursor.description or ()), space_row,
                         strict=True))
        if space["index_name"] is None or len(request.vector or ()) != space["dim"]:
            return None
        settings = search.index_settings("index", request.k, space["indexed_rows"])
        if settings:
            sql, params = _sql(search.set_local_statement(settings))
            cursor.execute(sql, params, prepare=True)
        sql, params = _sql(search.plain_index_query(int(space["id"]), int(space["dim"]),
                                                    request.k))
        rows = cursor.execute(sql, {**params, **search.bind_vector(request.vector or [])},
                              prepare=True).fetchall()
        connection.commit()
    finally:
        connection.close()  # back to the pool, rolled back if still open
    return SimilarItems(space=space["name"], method="index",
                        items=search.ranked_items(rows, None, request.k))


def _plain(request: SimilarityQuery) -> bool:
    """A search this path may answer: by vector, unfiltered, within ef_search, a valid vector."""
    return (request.vector is not None and request.unique_name is None
            and request.model_name != DEFAULT  # resolved by the route (spaces.space_for_read)
            and request.collection_id is None and not request.query and not request.filter
            and request.k <= HNSW_EF_SEARCH
            and not store.vector_problem(request.vector, len(request.vector)))


class FastSearch:
    """ASGI middleware answering plain searches (module docstring); everything else passes."""

    def __init__(self, app: ASGIApp, db_engine: Engine, path: str) -> None:
        self.app = app
        self.db = db_engine
        self.path = path  # the search route's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        answer = None if body is None else await self._answer(scope, body)
        if answer is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope: Scope, body: bytes) -> bytes | None:
        key = _bearer(scope)
        if key is None:
            return None
        try:
            request = SimilarityQuery.model_validate_json(body)
        except (ValidationError, ValueError):
            return None
        if not _plain(request):
            return None
        try:
            result = await run_in_threadpool(_search, self.db, key, request)
        except Exception:  # the route answers, with its own error handling
            return None
        return None if result is None else result.model_dump_json().encode()


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key.strip() or None if scheme.lower() == "bearer" else None
    return None


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The request body (None past `MAX_BODY`, or if the client left) and the messages read."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY:
            return None, messages
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` for the route: the messages already read, then the connection's own."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
