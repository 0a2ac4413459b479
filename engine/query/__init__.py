"""The lake's query language and filter, compiled to SQL conditions over `files`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from engine.errors import InvalidQuery


def file_conditions(query: str | None, filter: dict[str, Any] | None) -> list[ColumnElement[bool]]:
    """SQL conditions on `File` selecting what `query` and `filter` describe (stub)."""
    if query:
        raise InvalidQuery("Queries are not supported yet.", query=query, position=0)
    return []
