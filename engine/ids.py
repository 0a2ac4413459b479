"""Ids and version numbers as users write them: the ASCII digits 0-9 only, 1 .. 2**63 - 1.

`str.isdigit` and `int()` also take `²`, `٣`, `+1`, ` 1` and `1_000`, and a 5,000-digit number
is too large for PostgreSQL's BIGINT (and, past 4,300 digits, for `str()` of the int).
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # PostgreSQL BIGINT
MAX_DIGITS = len(str(MAX_ID))


def parse_id(text: str) -> int | None:
    """The whole number `text` spells in ASCII digits, if it is 1 .. MAX_ID; else None."""
    if not (0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
