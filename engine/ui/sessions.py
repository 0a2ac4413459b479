"""Signing in to the gallery: an API key (typed in, or behind a one-time link) becomes a
browser session. The cookie holds a random token; the database holds its SHA-256, the key it
acts for, and the CSRF token the pages' forms send back. Why: docs/ui.md, "Signing in".
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine import auth
from engine.db.models import ApiKey
from engine.db.ui_sessions import UiSession
from engine.errors import Unauthorized

SESSION_LIFETIME = timedelta(hours=12)
LINK_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class Visitor:
    """A signed-in browser: its session row, the key it acts with, its CSRF token."""

    session_id: int
    principal: auth.Principal
    csrf_token: str

    def can(self, scope: str) -> bool:
        return self.principal.has(scope)

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and same_token(self.csrf_token, presented)


def new_form_token() -> str:
    """A random token for a form shown before any session (the sign-in form)."""
    return secrets.token_urlsafe(32)


def same_token(expected: str, presented: str) -> bool:
    return hmac.compare_digest(expected.encode(), presented.encode())


def _new_row(session: Session, *, kind: str, key_id: int, lifetime: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        UiSession(
            token_hash=auth.hash_key(token),
            kind=kind,
            key_id=key_id,
            csrf_token=secrets.token_urlsafe(32) if kind == "session" else None,
            expires_at=datetime.now(UTC) + lifetime,
        )
    )
    session.flush()
    return token


def create_link(*, session: Session, key_id: int) -> tuple[str, datetime]:
    """A one-time sign-in token for the key `key_id`, and when it expires."""
    expires_at = datetime.now(UTC) + LINK_LIFETIME
    return _new_row(session, kind="link", key_id=key_id, lifetime=LINK_LIFETIME), expires_at


def redeem_link(*, session: Session, token: str) -> str:
    """A session token for the link `token`, which is used up; `Unauthorized` if it is
    unknown, used or expired."""
    key_id = session.scalar(
        delete(UiSession)
        .where(
            UiSession.token_hash == auth.hash_key(token),
            UiSession.kind == "link",
            UiSession.expires_at > datetime.now(UTC),
        )
        .returning(UiSession.key_id)
    )
    if key_id is None:
        raise Unauthorized(
            "This sign-in link is not valid: it was used already, has expired (links last "
            f"{LINK_LIFETIME.seconds // 60} minutes) or never existed. Run `metalake ui` again "
            "for a new one, or sign in with an API key."
        )
    return _new_row(session, kind="session", key_id=key_id, lifetime=SESSION_LIFETIME)


def sign_in(*, session: Session, key: str) -> str:
    """A session token for the API key `key`; `Unauthorized` if the key is not valid."""
    principal = auth.authenticate(session=session, key=key.strip())
    return _new_row(session, kind="session", key_id=principal.key_id, lifetime=SESSION_LIFETIME)


def visitor(*, session: Session, token: str | None) -> Visitor | None:
    """The signed-in browser whose cookie holds `token`, or None (no, unknown or expired
    session, or its key revoked). One statement."""
    if not token:
        return None
    row = session.execute(
        select(UiSession.id, UiSession.csrf_token, ApiKey.id, ApiKey.name, ApiKey.scopes)
        .join(ApiKey, ApiKey.id == UiSession.key_id)
        .where(
            UiSession.token_hash == auth.hash_key(token),
            UiSession.kind == "session",
            UiSession.expires_at > datetime.now(UTC),
            ApiKey.revoked_at.is_(None),
        )
    ).one_or_none()
    if row is None:
        return None
    session_id, csrf_token, key_id, name, scopes = row
    assert csrf_token is not None  # every session row has one (`_new_row`)
    return Visitor(
        session_id=session_id,
        principal=auth.Principal(key_id=key_id, name=name, scopes=frozenset(scopes)),
        csrf_token=csrf_token,
    )


def sign_out(*, session: Session, session_id: int) -> None:
    """End a session, and drop every expired link and session while at it."""
    session.execute(
        delete(UiSession).where(
            (UiSession.id == session_id) | (UiSession.expires_at <= datetime.now(UTC))
        )
    )
