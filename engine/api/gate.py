"""The API's front door (pure ASGI, outermost): a request's key is checked, and its body
bounded, before any of its body is read.

A missing, unknown or revoked key is a 401 (the open paths aside), a body over its route's
limit (`BodyLimits`) a 413; the checked `Principal` is handed on in the ASGI scope
(`checked_principal`). Why and how: docs/security.md, "The API".
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import bindparam, update

from engine import auth
from engine.api.connections import Connections, sql_of
from engine.api.errors import ErrorResponse, error_body
from engine.config import Settings
from engine.db.models import ApiKey
from engine.errors import EngineError, RequestTooLarge, ServiceUnavailable, Unauthorized

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRINCIPAL = "metalake.principal"  # the ASGI scope's key for the checked `Principal`
APPLICATION_NAME = "metalake-key-check"  # the gate's connections in pg_stat_activity
POOL_SIZE = 4  # a lookup is brief: more requests at once wait their turn
_RECORD_USE = (
    update(ApiKey).where(ApiKey.id == bindparam("key_id")).values(last_used_at=bindparam("now"))
)
log = logging.getLogger("engine.api")


def checked_principal(scope: Scope) -> auth.Principal | None:
    """The caller the gate let in, or None (no gate in front, or an open path)."""
    principal: auth.Principal | None = scope.get(PRINCIPAL)
    return principal


@dataclass(frozen=True)
class RouteLimit:
    method: str
    path: re.Pattern[str]
    limit: int | None  # None: the route bounds its own body as it streams it


@dataclass(frozen=True)
class BodyLimits:
    """The largest body a request may send: `default`, unless a route pattern says otherwise."""

    default: int
    routes: tuple[RouteLimit, ...] = ()

    def of(self, method: str, path: str) -> int | None:
        for route in self.routes:
            if route.method == method and route.path.fullmatch(path):
                return route.limit
        return self.default


def api_limits(settings: Settings, prefix: str) -> BodyLimits:
    """METALAKE_REQUEST_MAX_BYTES for every route but the upload routes."""
    api = re.escape(prefix)
    return BodyLimits(
        default=settings.request_max_bytes,
        routes=(
            # the bundle upload streams to disk, refused past its own limit (models.upload_limit)
            RouteLimit("POST", re.compile(api + r"/models/[^/]+/versions"), None),
            RouteLimit(
                "POST", re.compile(api + r"/collections/[^/]+/upload"), settings.upload_max_bytes
            ),
            RouteLimit(
                "POST",
                re.compile(api + r"/collections/by-name/.+/annotations/upload"),
                settings.annotation_max_bytes,
            ),
            RouteLimit(
                "POST",
                re.compile(api + r"/collections/[^/]+/annotations/import"),
                settings.annotation_max_bytes,
            ),
        ),
    )


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        connections: Connections,
        open_paths: Iterable[str],
        limits: BodyLimits,
        open_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.connections = connections
        self.open_paths = frozenset(open_paths)
        # paths under these answer without a key and check their own credential (signed URLs)
        self.open_prefixes = tuple(open_prefixes)
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        try:
            if path not in self.open_paths and not path.startswith(self.open_prefixes):
                scope[PRINCIPAL] = await self._principal(_bearer(scope))
            limit = self.limits.of(scope["method"], path)
            if limit is not None:
                declared = _content_length(scope)
                if declared is not None and declared > limit:
                    raise _too_large(limit)
        except EngineError as refusal:
            await _refuse(refusal, scope, receive, send)
            return
        if limit is None:
            await self.app(scope, receive, send)
        else:
            bounded = _Bounded(limit, scope, receive, send)
            await self.app(scope, bounded.receive, bounded.send)

    async def _principal(self, key: str | None) -> auth.Principal:
        if not key:
            raise Unauthorized()
        try:
            try:
                principal = await self._look_up(key)
            except psycopg.OperationalError:  # an idle connection dropped (a restart): again
                principal = await self._look_up(key)
        except psycopg.Error as exc:
            log.error("API key check failed: %s", exc)
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from exc
        if principal is None:
            raise Unauthorized("The API key is not valid (unknown or revoked).")
        return principal

    async def _look_up(self, key: str) -> auth.Principal | None:
        """The key's principal on one of the gate's connections; one that failed is closed."""
        connection = await self.connections.take(wait=True)
        assert connection is not None  # take(wait=True) waits for one
        try:
            principal = await _look_up(connection, key)
        except BaseException:
            await self.connections.give(connection, healthy=False)
            raise
        await self.connections.give(connection, healthy=True)
        return principal


async def _look_up(connection: psycopg.AsyncConnection[Any], key: str) -> auth.Principal | None:
    sql, params = sql_of(auth.KEY_LOOKUP)
    cursor = await connection.execute(sql, {**params, "key_hash": auth.hash_key(key)}, prepare=True)
    row = await cursor.fetchone()
    if row is None:
        return None
    key_id, name, scopes, last_used = row
    now = datetime.now(UTC)
    if auth.use_to_record(last_used, now):
        sql, params = sql_of(_RECORD_USE)
        await connection.execute(sql, {**params, "key_id": key_id, "now": now}, prepare=True)
    return auth.Principal(key_id=key_id, name=name, scopes=frozenset(scopes))


class _Bounded:
    """`receive` counting the body; past the limit, a 413 is sent and the app told the client
    left (it stops reading), and what the app sends afterwards is dropped."""

    def __init__(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        self.limit = limit
        self.scope = scope
        self._receive = receive
        self._send = send
        self.received = 0
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                if not self.started:
                    await _refuse(_too_large(self.limit), self.scope, self._receive, self._send)
                self.refused = True
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than this route accepts ({limit:,} bytes); send less "
        "per call, or ask the engine's operator to raise METALAKE_REQUEST_MAX_BYTES (or the "
        "upload limits of the upload routes).",
        limit=limit,
    )


async def _refuse(error: EngineError, scope: Scope, receive: Receive, send: Send) -> None:
    """The engine's error body. Whatever the client still sends of its body, the server reads
    and discards (uvicorn) so that the client gets this answer rather than a reset."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    response = ErrorResponse(
        error_body(error.code, error.message, error.details),
        status_code=error.status_code,
        headers=headers,
    )
    await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches (the request's, less the app's root path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def _bearer(scope: Scope) -> str | None:
    """The key of `Authorization: Bearer <key>`, as FastAPI's HTTPBearer reads it, or the
    password of `Authorization: Basic` (any user name): what Label Studio sends an ML backend
    (docs/labelstudio.md)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "basic":
                return _basic_password(key.strip())
            return key.strip() or None if scheme.lower() == "bearer" else None
    return None


def _basic_password(token: str) -> str | None:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password or None if colon else None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
