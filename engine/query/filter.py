"""The search `filter`: which kinds of annotation a file has, and when it was uploaded.

`{"annotation_types": ["raw" | "human" | "machine", ...], "from_date": ..., "to_date": ...}`;
semantics in docs/query.md. Anything else is an `InvalidFilter` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, literal, not_, or_, select

from engine.db.models import Annotation, File
from engine.errors import InvalidFilter
from engine.query.literals import TimeValue, as_time

ANNOTATION_TYPES = ("raw", "human", "machine")
KEYS = ("annotation_types", "from_date", "to_date")
_DATE_FORMS = "a date YYYY-MM-DD or an ISO 8601 datetime such as 2023-01-19T10:00:00+00:00"


@dataclass(frozen=True)
class FileFilter:
    """A validated filter. Upload times in `[start, end)`, or `[start, end]` if `end_inclusive`."""

    annotation_types: frozenset[str] = frozenset()
    start: datetime | None = None
    end: datetime | None = None
    end_inclusive: bool = False


def parse_filter(filter: Mapping[str, Any] | None) -> FileFilter:
    """Validate `filter`; None or {} (and keys set to None or []) mean no restriction."""
    if filter is None:
        return FileFilter()
    if not isinstance(filter, Mapping):
        raise InvalidFilter(
            f"The filter must be an object with keys {', '.join(KEYS)}; got "
            f"{type(filter).__name__}.",
            key=None,
            accepted=list(KEYS),
        )
    unknown = [key for key in filter if key not in KEYS]
    if unknown:
        raise InvalidFilter(
            f"Unknown filter key {unknown[0]!r}; accepted keys: {', '.join(KEYS)}.",
            key=unknown[0],
            accepted=list(KEYS),
        )
    types = _annotation_types(filter.get("annotation_types"))
    start = _time("from_date", filter.get("from_date"))
    end = _time("to_date", filter.get("to_date"))
    result = FileFilter(
        annotation_types=types,
        start=start.start if start else None,
        end=(end.end if end.is_date else end.start) if end else None,
        end_inclusive=bool(end and not end.is_date),
    )
    if start and end and not _nonempty(result):
        raise InvalidFilter(
            f"from_date {filter['from_date']!s} is after to_date {filter['to_date']!s}.",
            key="from_date",
            accepted=["from_date on or before to_date"],
        )
    return result


def filter_conditions(spec: FileFilter) -> list[ColumnElement[bool]]:
    """Conditions on `File` for a validated filter (none for an empty one)."""
    conditions: list[ColumnElement[bool]] = []
    if spec.annotation_types:

        def applied(*where: ColumnElement[bool]) -> ColumnElement[bool]:
            return exists(
                select(Annotation.id)
                .where(Annotation.file_id == File.id, Annotation.status == "applied", *where)
                .correlate(File)
            )

        kinds = [
            # raw: nothing labelled yet, i.e. no applied human or machine annotation
            not_(applied(Annotation.source.in_(("human", "machine"))))
            if kind == "raw"
            else applied(Annotation.source == kind)
            for kind in ANNOTATION_TYPES
            if kind in spec.annotation_types
        ]
        conditions.append(or_(*kinds))
    bound_type = File.uploaded_at.type
    if spec.start is not None:
        conditions.append(File.uploaded_at >= literal(spec.start, bound_type))
    if spec.end is not None:
        end = literal(spec.end, bound_type)
        conditions.append(File.uploaded_at <= end if spec.end_inclusive else File.uploaded_at < end)
    return conditions


def _annotation_types(value: Any) -> frozenset[str]:
    accepted = ", ".join(ANNOTATION_TYPES)
    if value is None:
        return frozenset()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidFilter(
            f"filter.annotation_types must be a list of strings among {accepted}; got {value!r}.",
            key="annotation_types",
            accepted=list(ANNOTATION_TYPES),
        )
    for kind in value:
        if kind not in ANNOTATION_TYPES:
            raise InvalidFilter(
                f"Unknown annotation type {kind!r} in filter.annotation_types; accepted: "
                f"{accepted}.",
                key="annotation_types",
                accepted=list(ANNOTATION_TYPES),
            )
    return frozenset(value)


def _time(key: str, value: Any) -> TimeValue | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return TimeValue(moment, None, is_date=False)
    if isinstance(value, date):
        return as_time(value.isoformat())
    parsed = as_time(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidFilter(
            f"filter.{key} must be {_DATE_FORMS}; got {value!r}.", key=key, accepted=[_DATE_FORMS]
        )
    return parsed


def _nonempty(spec: FileFilter) -> bool:
    if spec.start is None or spec.end is None:
        return True
    return spec.start <= spec.end if spec.end_inclusive else spec.start < spec.end
