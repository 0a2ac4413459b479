"""API schemas: the shared wire envelopes (`sdk.schemas`) plus engine-only ones."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sdk.schemas import *  # noqa: F403  (re-exported for routes)
from sdk.schemas import Schema, Scope


class ApiKeyCreate(Schema):
    name: str = Field(min_length=1, max_length=255)
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyPublic(Schema):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str
