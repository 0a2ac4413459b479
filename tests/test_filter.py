"""The search filter: validation messages, and which files each filter selects."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from engine.errors import InvalidFilter
from engine.query import file_conditions, parse_filter
from tests.test_query_reference import (
    Lake,
    RefAnnotation,
    RefFile,
    reference_names,
    sql_names,
    store,
)


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2023, 1, day, hour, minute, second, tzinfo=UTC)


LAKE = Lake(
    [
        RefFile("raw_early", uploaded_at=at(1, 0)),
        RefFile(
            "proposed_only",
            uploaded_at=at(2, 0),
            annotations=[RefAnnotation("x", "human", status="proposed")],
        ),
        RefFile("human", uploaded_at=at(19, 23, 59, 59), annotations=[RefAnnotation("x", "human")]),
        RefFile("machine", uploaded_at=at(20, 0), annotations=[RefAnnotation("x", "machine")]),
        RefFile(
            "both",
            uploaded_at=at(20, 12),
            annotations=[RefAnnotation("x", "human"), RefAnnotation("y", "machine")],
        ),
        RefFile("raw_source", uploaded_at=at(25), annotations=[RefAnnotation("x", "raw")]),
    ]
)
ALL = LAKE.names()


@pytest.fixture
def lake(session: Session) -> Session:
    store(session, LAKE)
    return session


SELECTIONS: list[tuple[dict[str, Any] | None, set[str]]] = [
    (None, ALL),
    ({}, ALL),
    ({"annotation_types": []}, ALL),
    ({"annotation_types": None, "from_date": None, "to_date": None}, ALL),
    ({"annotation_types": ["raw"]}, {"raw_early", "proposed_only", "raw_source"}),
    ({"annotation_types": ["human"]}, {"human", "both"}),
    ({"annotation_types": ["machine"]}, {"machine", "both"}),
    ({"annotation_types": ["human", "machine"]}, {"human", "machine", "both"}),
    (
        {"annotation_types": ["raw", "machine", "raw"]},
        {"raw_early", "proposed_only", "raw_source", "machine", "both"},
    ),
    ({"annotation_types": ["raw", "human", "machine"]}, ALL),
    ({"from_date": "2023-01-20"}, {"machine", "both", "raw_source"}),
    ({"to_date": "2023-01-19"}, {"raw_early", "proposed_only", "human"}),
    ({"from_date": "2023-01-19", "to_date": "2023-01-19"}, {"human"}),
    ({"from_date": "2023-01-20T00:00:00", "to_date": "2023-01-20T00:00:00"}, {"machine"}),
    ({"to_date": "2023-01-20T00:00:00Z"}, {"raw_early", "proposed_only", "human", "machine"}),
    ({"from_date": "2023-01-20T01:00:00+01:00"}, {"machine", "both", "raw_source"}),
    ({"to_date": "2023-01-19T23:59:59"}, {"raw_early", "proposed_only", "human"}),
    ({"to_date": "2023-01-19T23:59:58"}, {"raw_early", "proposed_only"}),
    ({"from_date": date(2023, 1, 20), "to_date": datetime(2023, 1, 20, 12)}, {"machine", "both"}),
    (
        {
            "annotation_types": ["human", "machine"],
            "from_date": "2022-08-02",
            "to_date": "2023-01-19",
        },
        {"human"},
    ),
    ({"to_date": "9999-12-31", "from_date": "0001-01-01"}, ALL),
]


def test_filters_select(lake: Session) -> None:
    for flt, expected in SELECTIONS:
        assert sql_names(lake, None, flt) == expected, flt
        assert reference_names(LAKE, None, flt) == expected, flt


def test_filter_and_query_combine(lake: Session) -> None:
    flt = {"annotation_types": ["human", "machine"], "to_date": "2023-01-20"}
    assert sql_names(lake, "annotation.label=y OR name=human", flt) == {"both", "human"}


@pytest.mark.parametrize(
    ("filter", "key", "fragment"),
    [
        (
            {"annotation_type": ["raw"]},
            "annotation_type",
            "Unknown filter key 'annotation_type'; accepted keys: annotation_types, "
            "from_date, to_date",
        ),
        (
            {"annotation_types": "raw"},
            "annotation_types",
            "must be a list of strings among raw, human, machine",
        ),
        ({"annotation_types": [1]}, "annotation_types", "must be a list of strings"),
        (
            {"annotation_types": ["robot"]},
            "annotation_types",
            "Unknown annotation type 'robot' in filter.annotation_types; accepted: raw, "
            "human, machine",
        ),
        ({"annotation_types": ["Human"]}, "annotation_types", "Unknown annotation type 'Human'"),
        ({"from_date": "yesterday"}, "from_date", "filter.from_date must be a date YYYY-MM-DD"),
        ({"to_date": "2023-02-30"}, "to_date", "filter.to_date must be"),
        ({"to_date": ""}, "to_date", "filter.to_date must be"),
        ({"from_date": 20230119}, "from_date", "got 20230119"),
        (
            {"from_date": "2023-01-20", "to_date": "2023-01-19"},
            "from_date",
            "from_date 2023-01-20 is after to_date 2023-01-19",
        ),
        (
            {"from_date": "2023-01-19T12:00:00", "to_date": "2023-01-19T11:59:59"},
            "from_date",
            "is after to_date",
        ),
        (
            {"from_date": "2023-01-20T00:00:00", "to_date": "2023-01-19"},
            "from_date",
            "is after to_date",
        ),
    ],
)
def test_invalid_filters_name_the_key(filter: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as err:
        file_conditions(None, filter)
    assert err.value.details["key"] == key
    assert fragment in err.value.message
    assert err.value.status_code == 400


@pytest.mark.parametrize("filter", [["raw"], "raw", 3])
def test_filter_must_be_an_object(filter: Any) -> None:
    with pytest.raises(InvalidFilter, match="must be an object"):
        parse_filter(filter)


def test_to_date_as_a_date_runs_through_the_day() -> None:
    spec = parse_filter({"from_date": "2023-01-19", "to_date": "2023-01-19"})
    assert (spec.start, spec.end, spec.end_inclusive) == (at(19, 0), at(20, 0), False)
    spec = parse_filter({"to_date": "2023-01-19T10:00:00"})
    assert (spec.start, spec.end, spec.end_inclusive) == (None, at(19, 10), True)
