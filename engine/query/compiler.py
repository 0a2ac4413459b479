"""AST -> one SQLAlchemy condition on `File` (semantics: docs/query.md).

Every leaf condition is two-valued (TRUE or FALSE, never NULL), so `NOT` is plain negation
and `a != v` is exactly `NOT (a = v)`. Values are bound parameters; multi-valued fields
are correlated EXISTS subqueries.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Numeric,
    and_,
    any_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import Text

from engine.db.models import Annotation, Collection, File, Tag, collection_files
from engine.query.literals import TimeValue, as_number, as_time
from engine.query.nodes import (
    NUMBER_FIELDS,
    And,
    Comparison,
    Field,
    Node,
    Not,
    Or,
    Value,
)

# `!=` never reaches the helpers below: it is compiled as NOT (=).
Positive = Literal["=", "<", "<=", ">", ">=", "~"]
Condition = ColumnElement[bool]


def compile_query(node: Node) -> Condition:
    """The condition on `File` that selects the files `node` matches."""
    if isinstance(node, And):
        return and_(*(compile_query(operand) for operand in node.operands))
    if isinstance(node, Or):
        return or_(*(compile_query(operand) for operand in node.operands))
    if isinstance(node, Not):
        return not_(compile_query(node.operand))
    if isinstance(node, Comparison):
        if node.op == "!=":
            return not_(_matches(node.field, "=", [node.value]))
        return _matches(node.field, node.op, [node.value])
    condition = _matches(node.field, "=", node.values)
    return not_(condition) if node.negated else condition


def _matches(field: Field, op: Positive, values: Sequence[Value]) -> Condition:
    """`field op v` for some v in `values` (IN is a disjunction of `=`)."""
    name = field.name
    if name == "annotation.label":
        return _exists(
            select(Annotation.id).where(
                Annotation.file_id == File.id,
                Annotation.status == "applied",
                _any_text(Annotation.label, op, values),
            )
        )
    if name == "tag":
        return _exists(
            select(Tag.id).where(Tag.file_id == File.id, _any_text(Tag.name, op, values))
        )
    if name == "collection":
        return _exists(
            select(collection_files.c.file_id)
            .join(Collection, Collection.id == collection_files.c.collection_id)
            .where(collection_files.c.file_id == File.id, _any_text(Collection.name, op, values))
        )
    if name == "name":
        return _any_text(File.unique_name, op, values)
    if name == "content_type":
        return _any_text(File.content_type, op, values)
    if name in NUMBER_FIELDS:
        column = File.width if name == "width" else File.height
        return _any(values, lambda v: _number(column, op, v))
    if name == "uploaded_at":
        return _any(values, lambda v: _time(op, v))
    assert field.key is not None
    key = field.key
    return _any(values, lambda v: _metadata(key, op, v))


def _exists(subquery: Any) -> Condition:
    return exists(subquery.correlate(File))


def _any(values: Sequence[Value], one: Callable[[Value], Condition]) -> Condition:
    return or_(*(one(v) for v in values)) if len(values) > 1 else one(values[0])


def _any_text(column: Any, op: Positive, values: Sequence[Value]) -> Condition:
    if op == "=" and len(values) > 1:
        return column.in_([v.text for v in values])  # type: ignore[no-any-return]
    return _any(values, lambda v: _text(column, op, v.text))


def _text(column: Any, op: Positive, text: str) -> Condition:
    """Text comparison: exact `=`, code-point order, `~` case-insensitive substring."""
    if op == "~":
        return func.strpos(func.lower(column), func.lower(literal(text))) > 0
    if op == "=":
        return column == literal(text)  # type: ignore[no-any-return]
    return _order(column.collate("C"), op, literal(text).collate("C"))


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _order(left: Any, op: Positive, right: Any) -> Condition:
    return _ORDER[op](left, right)  # type: ignore[no-any-return]


def _decimal(value: Value) -> Any:
    number = as_number(value.text)
    assert number is not None  # the parser checked
    return literal(number, Numeric())


def _number(column: Any, op: Positive, value: Value) -> Condition:
    # NULL (a video's width) never compares: FALSE AND NULL is FALSE, so this stays two-valued.
    return and_(column.is_not(None), _order(column, op, _decimal(value)))


def _time(op: Positive, value: Value) -> Condition:
    """A date is its whole UTC day [start, end); a datetime is an instant."""
    moment: TimeValue | None = as_time(value.text)
    assert moment is not None  # the parser checked
    column = File.uploaded_at
    start = literal(moment.start, File.uploaded_at.type)
    if not moment.is_date:
        return _order(column, op, start)
    if moment.end is None:  # 9999-12-31: the day runs to the end of time
        end_bound: Condition = true()
        past_end: Condition = false()
    else:
        end = literal(moment.end, File.uploaded_at.type)
        end_bound, past_end = column < end, column >= end
    return {
        "=": and_(column >= start, end_bound),
        "<": column < start,
        "<=": end_bound,
        ">": past_end,
        ">=": column >= start,
    }[op]


def _metadata(key: str, op: Positive, value: Value) -> Condition:
    """`metadata.<key> op value`, typed by the stored JSON value (table in docs/query.md)."""
    if op == "=":
        return _metadata_equals(key, value)
    stored = File.metadata_[key]
    kind = func.jsonb_typeof(stored)
    if op != "~" and value.number is not None:
        branch = (kind == "number", _order(cast(stored, Numeric), op, _decimal(value)))
    else:
        branch = (kind == "string", _text(stored.astext, op, value.text))
    # CASE fixes the evaluation order (the numeric cast only sees numbers) and makes a
    # missing key, JSON null, an object or a list a plain FALSE.
    return case(branch, else_=false())


def _metadata_equals(key: str, value: Value) -> Condition:
    """JSON containment (`metadata @> '{key: v}'`, which the GIN index serves) for each JSON
    value the literal stands for: always the string as written; also the number or boolean
    a bare literal spells. Containment compares numbers numerically (12 = 12.0).

    The documents are bound as JSON text (constants to the planner), and several are one
    `@> ANY (array)`: one index scan with a key each. Built in SQL instead
    (`jsonb_build_object`, two containments ORed), they were rebuilt for every row a
    sequential scan read, at several times the cost, and the planner preferred that scan to
    two index scans (bench/README.md, growth)."""
    key_json = json.dumps(key, ensure_ascii=False)
    values = [json.dumps(value.text, ensure_ascii=False)]
    if value.number is not None:
        values.append(str(value.number))  # -12, 640, 0.5: JSON numbers as written
    if value.boolean is not None:
        values.append("true" if value.boolean else "false")
    documents = [f"{{{key_json}: {json_value}}}" for json_value in values]
    if len(documents) == 1:
        return File.metadata_.contains(cast(literal(documents[0], Text()), JSONB))
    return File.metadata_.op("@>", is_comparison=True)(
        any_(cast(literal(documents, ARRAY(Text())), ARRAY(JSONB)))
    )
