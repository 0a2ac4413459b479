"""MetaLake SDK: a thin HTTP client (httpx + pydantic; no torch, sqlalchemy, celery or fastapi)."""

from sdk.client import Client
from sdk.errors import (
    BadRequest,
    Conflict,
    EngineUnreachable,
    Forbidden,
    MetaLakeError,
    NotFound,
    NotSupportedYet,
    ServerError,
    Unauthorized,
    ValidationFailed,
)
from sdk.layernext import LayerNextClient

__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "EngineUnreachable",
    "Forbidden",
    "LayerNextClient",
    "MetaLakeError",
    "NotFound",
    "NotSupportedYet",
    "ServerError",
    "Unauthorized",
    "ValidationFailed",
]
