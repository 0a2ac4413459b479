"""The query language against a real database: each case is checked by hand, by the SQL and
by the reference evaluator (`tests/test_query_reference.py`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.models import File
from engine.errors import InvalidQuery
from engine.query import file_conditions
from tests.test_query_reference import (
    Lake,
    RefAnnotation,
    RefFile,
    reference_names,
    sql_names,
    store,
)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2023, 1, day, hour, minute, tzinfo=UTC)


LAKE = Lake(
    collections={"birds": "image", "clips": "video"},
    files=[
        RefFile(
            "birds_robin.jpg",
            width=640,
            height=480,
            uploaded_at=at(18, 23, 59),
            metadata={"camera": "cam 2", "n": 12, "flag": True, "camera id": "A-1"},
            collections=["birds"],
            tags=["outdoor"],
            annotations=[
                RefAnnotation("Bird", "human"),
                RefAnnotation("cat", "machine", status="proposed"),
            ],
        ),
        RefFile(
            "birds_crow.jpg",
            width=1920,
            height=1080,
            uploaded_at=at(19, 0, 0),
            metadata={"camera": "Cam 1", "n": "12", "flag": "true"},
            collections=["birds"],
            tags=["outdoor", "Night"],
            annotations=[RefAnnotation("bird", "machine"), RefAnnotation("Dog", "machine")],
        ),
        RefFile(
            "birds_empty.jpg",
            width=12,
            height=12,
            uploaded_at=at(19, 23, 59),
            metadata={"n": 12.5, "flag": False, "camera": None},
            collections=["birds"],
        ),
        RefFile(
            "clips_walk.mp4",
            content_type="video",
            uploaded_at=at(20, 0, 0),
            metadata={"n": [12], "camera": {"id": 2}},
            collections=["clips", "birds"],
            annotations=[RefAnnotation("dog house", "raw")],
        ),
    ],
)
ALL = LAKE.names()
ROBIN, CROW, EMPTY, WALK = "birds_robin.jpg", "birds_crow.jpg", "birds_empty.jpg", "clips_walk.mp4"


@pytest.fixture
def lake(session: Session) -> Session:
    store(session, LAKE)
    return session


CASES = [
    # multi-valued fields: some value matches; != is NOT (=)
    ("annotation.label=Bird", {ROBIN}),
    ("annotation.label=cat", set()),  # only applied annotations count
    ("annotation.label!=Bird", {CROW, EMPTY, WALK}),
    ("annotation.label~BIRD", {ROBIN, CROW}),
    ("annotation.label IN [Dog, 'dog house']", {CROW, WALK}),
    ("annotation.label NOT IN [Dog, 'dog house']", {ROBIN, EMPTY}),
    ("annotation.label>c", {WALK}),  # code-point order: 'B' < 'D' < 'b' < 'c' < 'd'
    ("tag=Night", {CROW}),
    ("tag=night", set()),  # = is case-sensitive
    ("tag~night", {CROW}),
    ("tag!=outdoor", {EMPTY, WALK}),
    ("collection=birds", ALL),
    ("collection=clips", {WALK}),
    ("collection!=clips", {ROBIN, CROW, EMPTY}),
    # single-valued text
    ("name=birds_robin.jpg", {ROBIN}),
    ("name~ROBIN", {ROBIN}),
    ("name>=birds_empty.jpg AND name<clips", {ROBIN, EMPTY}),
    ("content_type=video", {WALK}),
    ("content_type!=video", {ROBIN, CROW, EMPTY}),
    # numbers; a video has no width, so only != matches it
    ("width>=640", {ROBIN, CROW}),
    ("width>639.5", {ROBIN, CROW}),
    ('width="12"', {EMPTY}),
    ("width!=640", {CROW, EMPTY, WALK}),
    ("height IN [12, 1080]", {CROW, EMPTY}),
    ("width<-1", set()),
    # dates are whole UTC days, datetimes instants; naive means UTC
    ("uploaded_at=2023-01-19", {CROW, EMPTY}),
    ("uploaded_at>2023-01-18", {CROW, EMPTY, WALK}),
    ("uploaded_at>=2023-01-19", {CROW, EMPTY, WALK}),
    ("uploaded_at<2023-01-19", {ROBIN}),
    ("uploaded_at<=2023-01-19", {ROBIN, CROW, EMPTY}),
    ("uploaded_at!=2023-01-19", {ROBIN, WALK}),
    ("uploaded_at=2023-01-19T00:00:00", {CROW}),
    ("uploaded_at=2023-01-19T01:00:00+01:00", {CROW}),
    ("uploaded_at>'2023-01-19 23:00'", {EMPTY, WALK}),
    ("uploaded_at<2023-01-19T00:00:00Z", {ROBIN}),
    ("uploaded_at IN [2023-01-18, 2023-01-20]", {ROBIN, WALK}),
    ("uploaded_at<=9999-12-31 AND uploaded_at>=0001-01-01", ALL),
    # metadata: typed by the stored JSON value
    ("metadata.n=12", {ROBIN, CROW}),  # JSON 12, and the string "12" as written
    ("metadata.n=12.0", {ROBIN}),  # numerically 12; the string "12" is not "12.0"
    ('metadata.n="12"', {CROW}),  # quoted: text only
    ("metadata.n>12", {EMPTY}),  # ordering with a number: JSON numbers only
    ("metadata.n>=12", {ROBIN, EMPTY}),
    ("metadata.n<100", {ROBIN, EMPTY}),
    ("metadata.n~12", {CROW}),  # ~: JSON strings only
    ("metadata.n!=12", {EMPTY, WALK}),
    ("metadata.camera='cam 2'", {ROBIN}),
    ("metadata.camera~CAM", {ROBIN, CROW}),
    ("metadata.camera>'Cam 1'", {ROBIN}),  # text order against JSON strings only
    ("metadata.camera!='cam 2'", {CROW, EMPTY, WALK}),  # null, object and missing match !=
    ('metadata."camera id"=A-1', {ROBIN}),
    ("metadata.'camera id'~a", {ROBIN}),
    ("metadata.flag=true", {ROBIN, CROW}),  # JSON true, and the string "true"
    ("metadata.flag=false", {EMPTY}),
    ('metadata.flag="true"', {CROW}),
    ("metadata.flag!=true", {EMPTY, WALK}),
    ("metadata.missing=x", set()),
    ("metadata.missing!=x", ALL),
    ("metadata.n IN [12.5, '12']", {CROW, EMPTY}),
    # boolean structure
    ("annotation.label=Bird OR tag=Night AND width>2000", {ROBIN}),
    ("(annotation.label=Bird OR tag=Night) AND width<2000", {ROBIN, CROW}),
    ("NOT collection=clips AND NOT tag=outdoor", {EMPTY}),
    ("NOT (collection=clips OR tag=outdoor)", {EMPTY}),
    ("not not tag=Night", {CROW}),
    ("tag=outdoor and (width=640 or height=1080)", {ROBIN, CROW}),
]


def test_queries_select_expected_files(lake: Session) -> None:
    """All cases in one database (a clone per case would triple the run time)."""
    wrong = {
        query: (expected, sql_names(lake, query), reference_names(LAKE, query))
        for query, expected in CASES
    }
    wrong = {q: v for q, v in wrong.items() if not v[0] == v[1] == v[2]}
    assert not wrong, "\n".join(
        f"{q!r}: expected {e}, sql {s}, reference {r}" for q, (e, s, r) in wrong.items()
    )


def test_empty_query_selects_everything(lake: Session) -> None:
    assert file_conditions(None, None) == []
    assert file_conditions("  \n", {}) == []
    assert sql_names(lake, "") == ALL


def test_conditions_combine_with_other_clauses(lake: Session) -> None:
    """The conditions are plain WHERE clauses: they work under COUNT, ORDER BY and LIMIT."""
    conditions = file_conditions("collection=birds AND width>=12", None)
    count = lake.scalar(select(func.count()).select_from(File).where(*conditions))
    first = lake.scalars(
        select(File.unique_name).where(*conditions).order_by(File.unique_name).limit(1)
    ).one()
    assert (count, first) == (3, CROW)


def test_values_are_bound_parameters_not_sql(lake: Session) -> None:
    hostile = "x'; DROP TABLE files; --"
    assert sql_names(lake, f'name="{hostile}" OR metadata."{hostile}"={hostile!r}') == set()
    assert lake.scalar(select(func.count()).select_from(File)) == len(ALL)


def test_type_errors_are_invalid_queries(lake: Session) -> None:
    with pytest.raises(InvalidQuery) as err:
        file_conditions("width > wide", None)
    assert err.value.position == 8
    assert err.value.status_code == 400


EXTREMES = [
    "width > " + "9" * 5000,
    "width < -" + "9" * 5000 + "." + "9" * 3000,
    "metadata.n > " + "9" * 5000,
    "uploaded_at > 0001-01-01T00:00:00+23:59",
    "uploaded_at < 9999-12-31T23:59:59.999999-23:59",
    "uploaded_at != 9999-12-31 AND uploaded_at > 9999-12-31",
    "name = '" + "x" * 5000 + "' OR tag ~ '%' OR tag ~ '_' OR metadata.'' = ''",
    'metadata."\\"; DROP TABLE files; --" ~ "\\\\"',
]


def test_extreme_values_run(lake: Session) -> None:
    for query in EXTREMES:
        assert sql_names(lake, query) == reference_names(LAKE, query), query
