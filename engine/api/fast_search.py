"""The common similarity search, answered before FastAPI's routing: an unfiltered search by
vector of an indexed space, with a valid key.

It runs the route's own statements as prepared statements and answers only what the route
would answer the same way; anything else is handed to the route untouched. docs/similarity.md
says why and what is handed on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import psycopg
from pydantic import ValidationError

from engine import auth
from engine.api.connections import Connections, sql_of
from engine.api.gate import checked_principal
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
APPLICATION_NAME = "metalake-fast-search"  # its connections in pg_stat_activity
POOL_SIZE = 4  # connections of the fast path's own (`Connections`); more searches at once
#               go to the route


async def _search(
    connections: Connections, principal: auth.Principal, request: SimilarityQuery
) -> SimilarItems | None:
    """The search, or None when the regular route must answer. A connection that raised is
    closed, not kept."""
    connection = await connections.take()
    if connection is None:
        return None
    try:
        result = await _search_on(connection, principal, request)
    except BaseException:
        await connections.give(connection, healthy=False)
        raise
    await connections.give(connection, healthy=True)
    return result


async def _search_on(
    connection: psycopg.AsyncConnection[Any], principal: auth.Principal, request: SimilarityQuery
) -> SimilarItems | None:
    if not principal.has("read"):
        return None  # the route answers 403
    space_cursor = connection.cursor()
    sql, params = sql_of(spaces.NAMED_SPACE)
    await space_cursor.execute(sql, {**params, "model_name": request.model_name}, prepare=True)
    space_row = await space_cursor.fetchone()
    if space_row is None:
        return None
    space = dict(
        zip((column.name for column in space_cursor.description or ()), space_row, strict=True)
    )
    if space["index_name"] is None or len(request.vector or ()) != space["dim"]:
        return None
    rows = await _index_search(connection, space, request)
    return SimilarItems(
        space=space["name"], method="index", items=search.ranked_items(rows, None, request.k)
    )


async def _index_search(
    connection: psycopg.AsyncConnection[Any], space: dict[str, Any], request: SimilarityQuery
) -> list[Any]:
    """The route's index query; with its settings (`search.index_settings`, SET LOCAL) in a
    transaction when there are any."""
    cursor = connection.cursor()
    sql, params = sql_of(search.plain_index_query(int(space["id"]), int(space["dim"]), request.k))
    values = {**params, **search.bind_vector(request.vector or [])}
    settings = search.index_settings("index", request.k, space["indexed_rows"])
    if not settings:
        await cursor.execute(sql, values, prepare=True)
        return await cursor.fetchall()
    async with connection.transaction():
        local, local_params = sql_of(search.set_local_statement(settings))
        await cursor.execute(local, local_params, prepare=True)
        await cursor.execute(sql, values, prepare=True)
        return await cursor.fetchall()


def _plain(request: SimilarityQuery) -> bool:
    """A search this path may answer: by vector, unfiltered, within ef_search, a valid vector."""
    return (
        request.vector is not None
        and request.unique_name is None
        and request.model_name != DEFAULT  # resolved by the route (spaces.space_for_read)
        and request.collection_id is None
        and not request.query
        and not request.filter
        and request.k <= HNSW_EF_SEARCH
        and not store.vector_problem(request.vector, len(request.vector))
    )


class FastSearch:
    """ASGI middleware answering plain searches (module docstring); everything else passes."""

    def __init__(self, app: ASGIApp, database_url: str, path: str) -> None:
        self.app = app
        self.connections = Connections(database_url, POOL_SIZE, APPLICATION_NAME)
        self.path = path  # the search route's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing_at_shutdown(receive), send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        answer = None if body is None else await self._answer(scope, body)
        if answer is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope: Scope, body: bytes) -> bytes | None:
        principal = checked_principal(scope)
        if principal is None:  # no gate in front: the route checks the key
            return None
        try:
            request = SimilarityQuery.model_validate_json(body)
        except (ValidationError, ValueError):
            return None
        if not _plain(request):
            return None
        try:
            result = await _search(self.connections, principal, request)
        except Exception:  # the route answers, with its own error handling
            return None
        return None if result is None else result.model_dump_json().encode()

    def _closing_at_shutdown(self, receive: Receive) -> Receive:
        async def receive_and_close() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.connections.close_idle()
            return message

        return receive_and_close


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
