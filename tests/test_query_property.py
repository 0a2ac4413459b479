"""Property test: on random lakes, every random query (and filter) selects in SQL exactly the
files the plain-Python reference evaluator selects.

Queries are generated as ASTs, rendered to text with random spelling (keyword case, spacing,
quotes, redundant parentheses), and parsed back: the parse must give the same AST, and the SQL
the same files as the reference evaluating that AST.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Executable, and_, select, true
from sqlalchemy.orm import Session

from engine.db.models import File
from engine.query import file_conditions, parse
from engine.query.nodes import (
    ORDERING,
    And,
    Comparison,
    Field,
    FieldName,
    Membership,
    Node,
    Not,
    Or,
    Value,
    children,
)
from tests.test_query_reference import (
    Lake,
    RefAnnotation,
    RefFile,
    evaluate,
    matches_filter,
    sql_names,
    store,
    time_range,
)

# -- random lakes ----------------------------------------------------------------------------
COLLECTIONS = ["birds", "Cats", "street-cams", "b"]
STEMS = ["img", "IMG", "frame", "bird"]
LABELS = ["Bird", "bird", "cat", "Dog", "dog house", "12", "it's"]
TAGS = ["dog", "outdoor", "Night", "night", "12"]
KEYS = ["n", "camera", "cam id", "a.b"]
SIZES = [None, 0, 1, 12, 480, 640, 641, 1920]
JSON_SCALARS = [
    0,
    12,
    -3,
    640,
    12.0,
    0.5,
    -1.25,
    12.5,
    10**20,
    "12",
    "12.0",
    "640",
    "-3",
    "cam 2",
    "Cam 2",
    "true",
    "false",
    "b",
    "B",
    "",
    True,
    False,
    None,
]

json_values = st.one_of(
    st.sampled_from(JSON_SCALARS),
    st.sampled_from(JSON_SCALARS),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(alphabet="abcAB 12", max_size=4),
    st.sampled_from([[12], {"x": 1}]),
)
times = st.builds(
    lambda day, hour, minute, second, micro: datetime(
        2023, 1, day, hour, minute, second, micro, tzinfo=UTC
    ),
    st.integers(17, 21),
    st.sampled_from([0, 10, 12, 23]),
    st.sampled_from([0, 59]),
    st.sampled_from([0, 59]),
    st.sampled_from([0, 1]),
)
annotation_records = st.builds(
    RefAnnotation,
    st.sampled_from(LABELS),
    st.sampled_from(["raw", "human", "machine"]),
    st.sampled_from(["applied", "applied", "proposed"]),
)


@st.composite
def lakes(draw: st.DrawFn) -> Lake:
    collections = draw(
        st.dictionaries(
            st.sampled_from(COLLECTIONS),
            st.sampled_from(["image", "video"]),
            min_size=1,
            max_size=3,
        )
    )
    names = sorted(collections)
    files = []
    for i in range(draw(st.integers(5, 25))):
        prefix = draw(st.sampled_from(names))
        files.append(
            RefFile(
                unique_name=f"{prefix}_{draw(st.sampled_from(STEMS))}{i}.jpg",
                content_type=draw(st.sampled_from(["image", "video"])),
                width=draw(st.sampled_from(SIZES)),
                height=draw(st.sampled_from(SIZES)),
                uploaded_at=draw(times),
                metadata=draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)),
                collections=draw(st.lists(st.sampled_from(names), unique=True, max_size=3)),
                annotations=draw(st.lists(annotation_records, max_size=4)),
                tags=draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=3)),
            )
        )
    return Lake(files, collections)


# -- random queries --------------------------------------------------------------------------
TEXT_VALUES = [
    "Bird",
    "bird",
    "BIRD",
    "ird",
    "cat",
    "Dog",
    "dog",
    "dog house",
    "12",
    "outdoor",
    "Night",
    "night",
    "birds",
    "Cats",
    "street-cams",
    "b",
    "img",
    "IMG",
    "frame",
    "image",
    "video",
    "jpg",
    ".jpg",
    "",
    "zzz",
    "_",
    "it's",
    'say "x"',
    "back\\slash",
    "birds_img3.jpg",
    "b_frame0.jpg",
]
NUMBERS = [
    "0",
    "1",
    "12",
    "12.0",
    "12.5",
    "-3",
    "640",
    "-1.25",
    "0.5",
    "641",
    "100000000000000000000",
]
TIMES = [
    "2023-01-17",
    "2023-01-18",
    "2023-01-19",
    "2023-01-20",
    "2023-01-21",
    "2023-01-19T12:00:00",
    "2023-01-19T00:00:00Z",
    "2023-01-19T10:59:59+02:00",
    "2023-01-18 23:59:59",
    "2023-01-20T00:00:00.000001",
    "2023-01-19T12:59:59.000001+00:00",
]
METADATA_VALUES = [*NUMBERS, "-3", "true", "false", "cam 2", "Cam 2", "cam", "b", "B", "a", ""]
TEXT_FIELDS: list[FieldName] = ["annotation.label", "tag", "collection", "name", "content_type"]
NUMBER_FIELDS: list[FieldName] = ["width", "height"]
KEYWORDS = {"and", "or", "not", "in"}
WORD = re.compile(r"[\w.:+\-]+")
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def bare_ok(text: str) -> bool:
    return bool(WORD.fullmatch(text)) and text.lower() not in KEYWORDS


@st.composite
def field_and_values(draw: st.DrawFn, ops: list[str]) -> tuple[Field, str, list[str]]:
    """A field, an operator from `ops` that suits it, and candidate value texts."""
    kind = draw(st.sampled_from(["text", "number", "time", "metadata"]))
    if kind == "text":
        name: FieldName = draw(st.sampled_from(TEXT_FIELDS))
        return Field(name), draw(st.sampled_from(ops)), TEXT_VALUES
    if kind in ("number", "time"):
        name = draw(st.sampled_from(NUMBER_FIELDS)) if kind == "number" else "uploaded_at"
        op = draw(st.sampled_from([op for op in ops if op != "~"]))
        return Field(name), op, NUMBERS if kind == "number" else TIMES
    key = draw(st.sampled_from([*KEYS, "missing"]))
    return Field("metadata", key), draw(st.sampled_from(ops)), METADATA_VALUES


@st.composite
def values(draw: st.DrawFn, field: Field, op: str, texts: list[str]) -> Value:
    text = draw(st.sampled_from(texts))
    quoted = draw(st.booleans()) if bare_ok(text) else True
    if field.name == "metadata" and op in ORDERING and text in ("true", "false"):
        quoted = True  # ordering by a bare boolean is an error
    return Value(text, quoted)


@st.composite
def comparisons(draw: st.DrawFn) -> Node:
    if draw(st.integers(0, 4)) == 0:
        field, _, texts = draw(field_and_values(["="]))
        items = draw(st.lists(values(field, "=", texts), min_size=1, max_size=3))
        return Membership(field, tuple(items), negated=draw(st.booleans()))
    field, op, texts = draw(field_and_values(["=", "!=", "<", "<=", ">", ">=", "~"]))
    return Comparison(field, op, draw(values(field, op, texts)))  # type: ignore[arg-type]


queries = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(lambda ops: And(tuple(ops)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda ops: Or(tuple(ops)), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=6,
)


def render(node: Node, rnd: random.Random) -> str:
    """Query text for `node`, spelled at random; parentheses only where needed, or by chance."""

    def kw(word: str) -> str:
        return rnd.choice([word.upper(), word.lower(), word.capitalize()])

    def gap() -> str:
        return rnd.choice(["", "", " ", "  "])

    def value(v: Value) -> str:
        if not v.quoted:
            return v.text
        quote = rnd.choice(["'", '"'])
        escaped = v.text.replace("\\", "\\\\").replace(quote, "\\" + quote)
        return f"{quote}{escaped}{quote}"

    def field(f: Field) -> str:
        if f.name != "metadata":
            return f.name
        assert f.key is not None
        return (
            f"metadata.{f.key}"
            if BARE_KEY.fullmatch(f.key)
            else "metadata." + value(Value(f.key, quoted=True))
        )

    def child(c: Node, parent: Node) -> str:
        text = render(c, rnd)
        needed = isinstance(c, And | Or) and (not isinstance(parent, Or) or isinstance(c, Or))
        return f"({gap()}{text}{gap()})" if needed or rnd.random() < 0.15 else text

    if isinstance(node, Comparison):
        return f"{field(node.field)}{gap()}{node.op}{gap()}{value(node.value)}"
    if isinstance(node, Membership):
        negation = f"{kw('not')} " if node.negated else ""
        items = f"{gap()},{gap()}".join(value(v) for v in node.values)
        return f"{field(node.field)} {negation}{kw('in')} [{gap()}{items}{gap()}]"
    if isinstance(node, Not):
        return f"{kw('not')} {child(node.operand, node)}"
    joiner = f" {kw('and' if isinstance(node, And) else 'or')} "
    return joiner.join(child(c, node) for c in node.operands)


# -- random filters --------------------------------------------------------------------------
@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    flt: dict[str, Any] = {}
    kinds: list[str] = draw(st.lists(st.sampled_from(["raw", "human", "machine"]), max_size=3))
    if draw(st.booleans()) or kinds:
        flt["annotation_types"] = kinds  # sometimes [], which means no restriction
    bounds = sorted(
        draw(st.lists(st.sampled_from(TIMES), max_size=2)), key=lambda t: time_range(t)[0]
    )
    if len(bounds) == 2:
        flt["from_date"], flt["to_date"] = bounds
    elif bounds:
        flt[draw(st.sampled_from(["from_date", "to_date"]))] = bounds[0]
    return flt


def subtrees(node: Node) -> list[Node]:
    found, stack = [], [node]
    while stack:
        found.append(stack.pop())
        stack.extend(children(found[-1]))
    return found


# -- the properties --------------------------------------------------------------------------
def truth_selects(queries: list[str]) -> list[Executable]:
    """SELECTs of every file's name with one boolean column per query (400 to a SELECT)."""
    conditions = [and_(true(), *file_conditions(q, None)) for q in queries]
    return [
        select(File.unique_name, *conditions[first : first + 400])
        for first in range(0, len(conditions), 400)
    ]


def sql_truth_table(
    session: Session, queries: list[str], selects: list[Executable] | None = None
) -> list[set[str]]:
    """The files each query selects, read as values: this also checks none is ever NULL."""
    selected: list[set[str]] = [set() for _ in queries]
    for index, statement in enumerate(selects or truth_selects(queries)):
        first = index * 400
        for name, *truths in session.execute(statement):
            for offset, truth in enumerate(truths):
                assert truth is not None, queries[first + offset]
                if truth:
                    selected[first + offset].add(name)
    return selected


def reference_table(lake: Lake, nodes: list[Node]) -> list[set[str]]:
    return [{f.unique_name for f in lake.files if evaluate(node, f)} for node in nodes]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lake=lakes(),
    cases=st.lists(st.tuples(queries, filters()), min_size=1, max_size=15),
    rnd=st.randoms(use_true_random=False),
)
def test_sql_selects_what_the_reference_selects(
    session: Session,
    lake: Lake,
    cases: list[tuple[Node, dict[str, Any] | None]],
    rnd: random.Random,
) -> None:
    store(session, lake)
    for query, flt in cases:
        text = render(query, rnd)
        assert parse(text) == query, text
        expected = {
            f.unique_name for f in lake.files if evaluate(query, f) and matches_filter(f, flt or {})
        }
        assert sql_names(session, text, flt) == expected, (text, flt)
    # Every sub-expression on its own too, so a wrong leaf cannot hide inside AND / OR.
    nodes = [node for query, _ in cases for node in subtrees(query)]
    texts = [render(node, rnd) for node in nodes]
    for text, expected, got in zip(
        texts, reference_table(lake, nodes), sql_truth_table(session, texts), strict=True
    ):
        assert got == expected, text


def leaf_grid() -> list[Node]:
    """Every field with every operator and every value of its vocabulary, quoted and bare."""
    grid: list[Node] = []

    def add(field: Field, ops: tuple[str, ...], texts: list[str]) -> None:
        for op in ops:
            for text in texts:
                for quoted in {True, not bare_ok(text)}:
                    if (
                        field.name == "metadata"
                        and op in ORDERING
                        and not quoted
                        and text in ("true", "false")
                    ):
                        continue
                    grid.append(Comparison(field, op, Value(text, quoted)))  # type: ignore[arg-type]

    all_ops = ("=", "!=", "<", "<=", ">", ">=", "~")
    for name in TEXT_FIELDS:
        add(Field(name), all_ops, TEXT_VALUES)
    for name in NUMBER_FIELDS:
        add(Field(name), all_ops[:-1], NUMBERS)
    add(Field("uploaded_at"), all_ops[:-1], TIMES)
    for key in [*KEYS, "missing"]:
        add(Field("metadata", key), all_ops, METADATA_VALUES)
    return grid


@pytest.fixture(scope="module")
def leaves() -> tuple[list[Node], list[str], list[Executable]]:
    """The grid of single comparisons, their text, and the SELECTs evaluating them (built once)."""
    nodes = leaf_grid()
    rnd = random.Random(0)
    texts = [render(node, rnd) for node in nodes]
    assert [parse(text) for text in texts] == nodes
    return nodes, texts, truth_selects(texts)


# No shrinking: an example costs ~3700 comparisons, and the message names the failing one.
@settings(
    max_examples=50,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lake=lakes())
def test_every_comparison_on_random_lakes(
    session: Session, lake: Lake, leaves: tuple[list[Node], list[str], list[Executable]]
) -> None:
    store(session, lake)
    nodes, texts, selects = leaves
    wrong = [
        (text, sorted(got ^ expected))
        for text, expected, got in zip(
            texts,
            reference_table(lake, nodes),
            sql_truth_table(session, texts, selects),
            strict=True,
        )
        if got != expected
    ]
    assert not wrong, f"{len(wrong)} comparisons disagree, e.g. {wrong[:5]}"


@settings(max_examples=300, deadline=None)
@given(node=queries, rnd=st.randoms(use_true_random=False))
def test_rendered_queries_parse_back(node: Node, rnd: random.Random) -> None:
    assert parse(render(node, rnd)) == node
