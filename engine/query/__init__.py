"""The lake's query language and filter, compiled to SQL conditions over `files`.

`file_conditions(query, filter)` is the entry point the services use; `parse` gives the AST.
The language and its exact semantics are documented in docs/query.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement

from engine.errors import InvalidQuery
from engine.query.compiler import compile_query
from engine.query.filter import FileFilter, filter_conditions, parse_filter
from engine.query.nodes import Node
from engine.query.parser import parse

__all__ = [
    "FileFilter",
    "Node",
    "compile_query",
    "file_conditions",
    "filter_conditions",
    "parse",
    "parse_filter",
]


def file_conditions(
    query: str | None, filter: Mapping[str, Any] | None
) -> list[ColumnElement[bool]]:
    """Conditions to AND onto `select(File)` selecting what `query` and `filter` describe.

    An empty or blank query and an empty filter add no condition. Raises `InvalidQuery` /
    `InvalidFilter` (400s naming the position or key) for invalid input, nothing else.
    """
    conditions: list[ColumnElement[bool]] = []
    if query is not None and not isinstance(query, str):
        raise InvalidQuery("The query must be a string.", query=repr(query), position=0)
    if query and query.strip():
        conditions.append(compile_query(parse(query)))
    conditions.extend(filter_conditions(parse_filter(filter)))
    return conditions
