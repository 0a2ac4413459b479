"""API keys: created once (the plaintext is shown one time), stored as SHA-256, checked by scope."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from engine.db.models import SCOPES, ApiKey
from engine.errors import Forbidden, InvalidInput, Unauthorized

KEY_PREFIX = "mlk_"
# Each scope includes the ones before it: admin ⊃ write ⊃ read.
SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        need = SCOPE_RANK[scope]
        return any(SCOPE_RANK[s] >= need for s in self.scopes)

    def require(self, scope: str, because: str | None = None) -> None:
        """Refuse (403) unless the key has `scope`; `because` says why the action needs it."""
        if not self.has(scope):
            why = f"{because}, so it needs" if because else "this action needs"
            raise Forbidden(
                f"This API key ({self.name!r}) has scopes {sorted(self.scopes)}; {why} "
                f"{scope!r}. Create one with `metalake keys create --scope {scope}`.",
                required_scope=scope,
            )


def create_key(*, session: Session, name: str, scopes: Sequence[str]) -> tuple[str, ApiKey]:
    """Create a key; returns the plaintext (shown once) and the stored row."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise InvalidInput(
            f"Scopes must be a non-empty subset of {list(SCOPES)}; got {list(scopes)}.",
            unknown_scopes=unknown,
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:12], key_hash=hash_key(key), scopes=sorted(set(scopes)))
    session.add(row)
    session.flush()
    return key, row


# Runs on every request: the columns it needs (not the ORM entity), in a statement built once
# and executed on the session's connection (Core, no ORM layer), not rebuilt per request.
KEY_LOOKUP = select(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.last_used_at).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


def use_to_record(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a key's use now is to be written: at most once a minute, since a write on every
    request would make all requests made with one key queue on that row's lock."""
    return last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION


def authenticate(*, session: Session, key: str | None) -> Principal:
    if not key:
        raise Unauthorized()
    row = session.connection().execute(KEY_LOOKUP, {"key_hash": hash_key(key)}).one_or_none()
    if row is None:
        raise Unauthorized("The API key is not valid (unknown or revoked).")
    now = datetime.now(UTC)
    if use_to_record(row.last_used_at, now):
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return Principal(key_id=row.id, name=row.name, scopes=frozenset(row.scopes))


def revoke_key(*, session: Session, key_id: int) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=datetime.now(UTC)))


def list_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
