"""The query parser: structure, precedence, quoting, and errors with their positions."""

from __future__ import annotations

import pytest

from engine.errors import InvalidQuery
from engine.query import parse
from engine.query.nodes import And, Comparison, Field, Membership, Not, Or, Value
from engine.query.parser import MAX_DEPTH, MAX_LENGTH


def cmp(
    name: str, op: str, text: str, *, key: str | None = None, quoted: bool = False
) -> Comparison:
    return Comparison(Field(name, key), op, Value(text, quoted))  # type: ignore[arg-type]


A, B, C = cmp("tag", "=", "a"), cmp("tag", "=", "b"), cmp("tag", "=", "c")


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("tag=a", A),
        ("  tag = a  ", A),
        ("tag=a OR tag=b AND tag=c", Or((A, And((B, C))))),
        ("tag=a AND tag=b OR tag=c", Or((And((A, B)), C))),
        ("(tag=a OR tag=b) AND tag=c", And((Or((A, B)), C))),
        ("NOT tag=a AND tag=b", And((Not(A), B))),
        ("NOT (tag=a AND tag=b)", Not(And((A, B)))),
        ("NOT NOT tag=a", Not(Not(A))),
        ("tag=a OR NOT tag=b OR tag=c", Or((A, Not(B), C))),
        ("tag=a and tag=b and tag=c", And((A, B, C))),
        ("(tag=a AND tag=b) AND tag=c", And((And((A, B)), C))),
        ("((tag=a))", A),
        ("tag=a oR (tag=b)", Or((A, B))),
        ("(tag=a)AND(tag=b)", And((A, B))),
        ("tag=a\nAND\ttag=b", And((A, B))),
    ],
)
def test_precedence_and_grouping(query: str, tree: object) -> None:
    assert parse(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("annotation.label=Bird", cmp("annotation.label", "=", "Bird")),
        ("tag!=dog", cmp("tag", "!=", "dog")),
        ("collection~Bird", cmp("collection", "~", "Bird")),
        ("name=example_collection_img1.jpg", cmp("name", "=", "example_collection_img1.jpg")),
        ("content_type=image", cmp("content_type", "=", "image")),
        ("width>=640", cmp("width", ">=", "640")),
        ("height<-1.5", cmp("height", "<", "-1.5")),
        ("uploaded_at<=2023-01-19", cmp("uploaded_at", "<=", "2023-01-19")),
        (
            "uploaded_at>2023-01-19T10:00:00+02:00",
            cmp("uploaded_at", ">", "2023-01-19T10:00:00+02:00"),
        ),
        ("metadata.camera=2", cmp("metadata", "=", "2", key="camera")),
        ("metadata.cam_id-2>1", cmp("metadata", ">", "1", key="cam_id-2")),
        (
            'metadata."camera id"="cam 2"',
            cmp("metadata", "=", "cam 2", key="camera id", quoted=True),
        ),
        ("metadata.'a.b'<x", cmp("metadata", "<", "x", key="a.b")),
        ('tag="say \\"hi\\""', cmp("tag", "=", 'say "hi"', quoted=True)),
        ("tag='it\\'s'", cmp("tag", "=", "it's", quoted=True)),
        ('tag="back\\\\slash"', cmp("tag", "=", "back\\slash", quoted=True)),
        ('tag="\\n"', cmp("tag", "=", "n", quoted=True)),  # a backslash keeps the next char
        ('tag="it\'s"', cmp("tag", "=", "it's", quoted=True)),
        ('tag=""', cmp("tag", "=", "", quoted=True)),
        ('tag="AND"', cmp("tag", "=", "AND", quoted=True)),
        ("tag=android", cmp("tag", "=", "android")),  # a keyword inside a word is a word
        ("tag=Vögel", cmp("tag", "=", "Vögel")),
        (
            "tag IN [a, 'b c', 3]",
            Membership(Field("tag"), (Value("a"), Value("b c", True), Value("3"))),
        ),
        ("tag not in [a]", Membership(Field("tag"), (Value("a"),), negated=True)),
        ("tag NOT IN [a,b]", Membership(Field("tag"), (Value("a"), Value("b")), negated=True)),
    ],
)
def test_fields_operators_and_values(query: str, tree: object) -> None:
    assert parse(query) == tree


def test_value_kinds() -> None:
    assert cmp("tag", "=", "12").value.number is not None
    assert cmp("tag", "=", "12", quoted=True).value.number is None
    assert cmp("tag", "=", "1e5").value.number is None
    assert cmp("tag", "=", "true").value.boolean is True
    assert cmp("tag", "=", "True").value.boolean is None


def test_positions_are_recorded() -> None:
    node = parse('tag=a AND NOT metadata."k"="v"')
    assert isinstance(node, And)
    negation = node.operands[1]
    assert isinstance(negation, Not)
    assert isinstance(negation.operand, Comparison)
    assert (negation.pos, negation.operand.pos, negation.operand.value.pos) == (10, 14, 27)


@pytest.mark.parametrize(
    ("query", "position", "message", "expected"),
    [
        (
            "annotation.label=AND",
            17,
            "Unexpected 'AND' at position 17: expected a value",
            ["a value"],
        ),
        ("tag=", 4, "Unexpected end of query at position 4: expected a value", ["a value"]),
        (
            "",
            0,
            "Unexpected end of query at position 0: expected a field, NOT or '('",
            ["a field", "NOT", "'('"],
        ),
        (
            "tag=a tag=b",
            6,
            "Unexpected 'tag' at position 6: expected AND, OR or end of query",
            ["AND", "OR", "end of query"],
        ),
        ("(tag=a", 6, "Unexpected end of query at position 6: expected ')'", ["')'"]),
        ("tag=a)", 5, "Unexpected ')' at position 5: expected end of query", ["end of query"]),
        ("tag=a AND", 9, None, ["a field", "NOT", "'('"]),
        ("tag a", 4, None, ["an operator (= != < <= > >= ~)", "IN", "NOT IN"]),
        (
            "tag!a",
            3,
            "Unexpected character '!' at position 3: expected an operator "
            "(= != < <= > >= ~), IN or NOT IN",
            None,
        ),
        ("tag==a", 4, None, ["a value"]),
        ("tag IN a", 7, None, ["'['"]),
        ("tag IN []", 8, None, ["a value"]),
        ("tag IN [a b]", 10, None, ["','", "']'"]),
        ("tag IN [a,]", 10, None, ["a value"]),
        ('tag="abc', 4, 'Unterminated string at position 4: expected a closing "', ['a closing "']),
        ("tag='abc\\'", 4, None, ["a closing '"]),
        ("tag=a AND (", 11, None, ["a field", "NOT", "'('"]),
        ("tag=a ORDER", 6, None, ["AND", "OR", "end of query"]),
        ("tag=@", 4, "Unexpected character '@' at position 4: expected a value", ["a value"]),
        ("foo=1", 0, None, None),
        ("Tag=a", 0, None, None),
        ("metadata=1", 0, None, None),
        ("metadata.=1", 9, None, ["a metadata key"]),
        (
            "metadata.a.b=1",
            9,
            "Invalid metadata key 'a.b' at position 9: a bare key is letters, "
            "digits, '_' and '-'; quote any other key, e.g. metadata.\"a.b\"",
            None,
        ),
        (
            "width=wide",
            6,
            "Invalid value 'wide' for width at position 6: expected a number",
            ["a number"],
        ),
        ("tag=a OR height>1e3", 16, None, ["a number"]),
        ("width IN [1, x]", 13, None, ["a number"]),
        ("width~1", 5, None, ["=", "!=", "<", "<=", ">", ">="]),
        ("uploaded_at~2023", 11, None, None),
        ("uploaded_at>yesterday", 12, None, ["a date or datetime (ISO 8601)"]),
        ("uploaded_at=2023-02-30", 12, None, None),
        ("uploaded_at NOT IN [2023-01-01, '2023-01-01 25:00']", 32, None, None),
        ("metadata.flag>true", 14, None, None),
        ("tag=a\x00", 5, None, None),
        ("tag='\ud800'", 5, None, None),
    ],
)
def test_invalid_queries_name_the_position(
    query: str, position: int, message: str | None, expected: list[str] | None
) -> None:
    with pytest.raises(InvalidQuery) as err:
        parse(query)
    assert err.value.position == position, err.value.message
    assert err.value.details["position"] == position
    assert err.value.details["query"] == query
    if message is not None:
        assert err.value.message == message
    else:
        assert f"position {position}" in err.value.message
    if expected is not None:
        assert err.value.expected == expected


def test_unknown_field_lists_the_fields() -> None:
    with pytest.raises(InvalidQuery) as err:
        parse("label=Bird")
    assert "annotation.label" in err.value.expected
    assert "metadata.<key>" in err.value.expected
    assert err.value.message.startswith("Unknown field 'label' at position 0")


def test_limits() -> None:
    assert parse("(" * 200 + "tag=a" + ")" * 200) == A  # parentheses alone add no depth
    deep = "NOT " * MAX_DEPTH + "tag=a"
    with pytest.raises(InvalidQuery, match="nests more than"):
        parse(deep)
    parse("NOT " * (MAX_DEPTH - 1) + "tag=a")
    with pytest.raises(InvalidQuery) as err:
        parse("tag=" + "a" * MAX_LENGTH)
    assert err.value.position == MAX_LENGTH
    wide = " OR ".join(f"tag=t{i}" for i in range(500))
    assert len(parse(wide).operands) == 500  # type: ignore[union-attr]


def test_non_string_query_is_invalid() -> None:
    with pytest.raises(InvalidQuery):
        parse(42)  # type: ignore[arg-type]
