"""Path and query parameters the routes share: ids spelled in ASCII digits, within BIGINT.

FastAPI's `int` takes `+1`, ` 1`, `1_000` and numbers of any length (a 5,000-digit id reached
PostgreSQL and failed there); these types answer a 422 naming the parameter instead.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval
from pydantic import BeforeValidator

from engine.ids import MAX_ID, parse_id


def _ascii_id(value: object) -> object:
    if isinstance(value, str) and parse_id(value) is None:
        raise ValueError(
            f"must be a whole number from 1 to {MAX_ID}, written with the digits 0-9 only"
        )
    return value


# A row id (collection, file, job, annotation, key, model version): 1 .. 2**63 - 1.
Id = Annotated[int, Interval(ge=1, le=MAX_ID), BeforeValidator(_ascii_id)]
