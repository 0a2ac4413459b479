"""Fuzz: any text is either a query that runs on the database or an `InvalidQuery` (a 400) —
never a lark exception, a SQL error or anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import File
from engine.errors import InvalidQuery
from engine.query import file_conditions, parse
from tests.test_query_reference import Lake, RefAnnotation, RefFile, store

TOKENS = [
    "annotation.label",
    "tag",
    "collection",
    "name",
    "content_type",
    "width",
    "height",
    "uploaded_at",
    "metadata.k",
    "metadata.n",
    'metadata."a b"',
    "metadata.'x'",
    "metadata.",
    "metadata",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~",
    "!",
    "IN",
    "in",
    "NOT",
    "not",
    "AND",
    "and",
    "OR",
    "Or",
    "(",
    ")",
    "[",
    "]",
    ",",
    '"x"',
    "'y'",
    '"',
    "'",
    "\\",
    '"\\"',
    "12",
    "-1.5",
    "0",
    "1e5",
    "9" * 40,
    "-" + "9" * 40 + ".5",
    "2023-01-19",
    "2023-01-19T10:00:00+02:00",
    "9999-12-31",
    "0001-01-01",
    "0001-01-01T00:00:00+23:59",
    "true",
    "false",
    "null",
    "Bird",
    "",
    " ",
    "\n",
    "@",
    "\x00",
    "é",
    "\ud800",
    "\u00a0",
    "%",
    "_",
    "'%'",
    '"_"',
]

query_texts = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
    st.text(max_size=40),
    st.text(alphabet="tagnmeid.=!<>~()[],\"'\\ 12-:TANDORIN", max_size=40),
)


@pytest.fixture
def lake(session: Session) -> Session:
    """A few files whose metadata has every JSON type, so every CASE branch gets evaluated."""
    store(
        session,
        Lake(
            [
                RefFile(
                    "f1",
                    width=10,
                    metadata={"k": 1, "n": "12", "a b": True, "x": None},
                    annotations=[RefAnnotation("Bird")],
                    tags=["t"],
                    collections=["c"],
                ),
                RefFile("f2", content_type="video", metadata={"k": "1", "n": [1], "x": {"y": 1}}),
                RefFile("f3", width=1, height=2, metadata={"k": 1.5e300, "n": -1, "a b": "x"}),
            ]
        ),
    )
    return session


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=query_texts)
def test_any_text_runs_or_is_an_invalid_query(lake: Session, text: str) -> None:
    try:
        conditions = file_conditions(text, None)
    except InvalidQuery as err:
        error = err
    else:
        with lake.begin_nested():  # a SQL error surfaces here, as itself
            lake.scalars(select(File.id).where(*conditions)).all()
        return
    assert 0 <= error.position <= len(text)
    assert f"position {error.position}" in error.message


@settings(max_examples=1500, deadline=None)
@given(text=query_texts)
def test_parser_raises_only_invalid_query(text: str) -> None:
    with contextlib.suppress(InvalidQuery):
        parse(text)
