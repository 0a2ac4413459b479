"""Request dependencies: settings, one database transaction per request, the caller's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from engine.api.gate import checked_principal
from engine.auth import Principal, authenticate
from engine.config import Settings
from engine.db.session import session_scope
from engine.errors import Unauthorized
from engine.storage import Storage


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_session(request: Request) -> Iterator[Session]:
    # scope="function" below: the transaction commits before the response is sent, so a
    # client never sees a success for a write that is not yet visible.
    with session_scope(request.app.state.session_factory) as session:
        yield session


T = TypeVar("T")

SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key from `metalake keys create`.")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _principal(request: Request, session: SessionDep, credentials: Credentials) -> Principal:
    """The caller the gate checked (engine/api/gate.py); without a gate in front, looked up."""
    return checked_principal(request.scope) or authenticate(
        session=session, key=credentials.credentials if credentials else None
    )


async def _key_given(credentials: Credentials) -> HTTPAuthorizationCredentials:
    """The bearer key, checked in `in_one_transaction`; a request without one is refused here,
    before its body is read (as the other routes' key dependencies do)."""
    if credentials is None:
        raise Unauthorized()
    return credentials


KeyGiven = Annotated[HTTPAuthorizationCredentials, Depends(_key_given)]


def in_one_transaction(
    request: Request,
    credentials: HTTPAuthorizationCredentials,
    scope: str,
    work: Callable[[Session], T],
) -> T:
    """`work` under the caller's key checked for `scope`, in one transaction, all in the
    calling thread. For latency-critical routes (declared `async`, run through
    `run_in_threadpool`): one thread-pool round trip instead of one per dependency."""
    with session_scope(request.app.state.session_factory) as session:
        principal = checked_principal(request.scope) or authenticate(
            session=session, key=credentials.credentials
        )
        principal.require(scope)
        return work(session)


def require(scope: str, because: str | None = None):  # type: ignore[no-untyped-def]
    """A dependency refusing keys without `scope` (403, saying `because` when given)."""

    # async: no I/O, so FastAPI runs it on the event loop instead of a thread-pool round trip
    async def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        principal.require(scope, because)
        return principal

    return Depends(dependency)


ReadKey = Annotated[Principal, require("read")]
WriteKey = Annotated[Principal, require("write")]
AdminKey = Annotated[Principal, require("admin")]
