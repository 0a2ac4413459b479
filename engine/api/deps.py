"""Request dependencies: settings, one database transaction per request, the caller's key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from engine.auth import Principal, authenticate
from engine.config import Settings
from engine.db.session import session_scope
from engine.storage import Storage


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_session(request: Request) -> Iterator[Session]:
    # scope="function" below: the transaction commits before the response is sent, so a
    # client never sees a success for a write that is not yet visible.
    with session_scope(request.app.state.session_factory) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key from `metalake keys create`.")


def _principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return authenticate(session=session, key=credentials.credentials if credentials else None)


def require(scope: str):  # type: ignore[no-untyped-def]
    def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        principal.require(scope)
        return principal

    return Depends(dependency)


ReadKey = Annotated[Principal, require("read")]
WriteKey = Annotated[Principal, require("write")]
AdminKey = Annotated[Principal, require("admin")]
