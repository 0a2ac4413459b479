"""How a query or filter value is read: numbers, booleans and points in time.

Shared by the parser (to reject a bad value with its position), the compiler and the filter,
so a value means the same thing everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
BOOLEANS = {"true": True, "false": False}


def as_number(text: str) -> Decimal | None:
    """`text` as an exact decimal if it is written `-12`, `640` or `0.5`; else None."""
    return Decimal(text) if _NUMBER.fullmatch(text) else None


@dataclass(frozen=True)
class TimeValue:
    """A date (the whole UTC day `[start, end)`) or an instant (`start`, with `end` None).

    `end` is also None for a date whose next day is past `datetime.max` (9999-12-31).
    """

    start: datetime
    end: datetime | None
    is_date: bool


def as_time(text: str) -> TimeValue | None:
    """An ISO 8601 date or datetime (naive ones are UTC); None if `text` is neither."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(), UTC)
        try:
            end: datetime | None = start + timedelta(days=1)
        except OverflowError:
            end = None
        return TimeValue(start, end, is_date=True)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return TimeValue(instant, None, is_date=False)
