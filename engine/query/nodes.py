"""The query AST: what `parse` returns and the compiler (and the tests' evaluator) walk.

Positions are 0-based character offsets into the query; they do not take part in equality,
so `parse("a=1 AND b=2") == And((..., ...))` compares structure only.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from decimal import Decimal
from typing import Literal

from engine.query.literals import BOOLEANS, as_number

FieldName = Literal[
    "annotation.label",
    "tag",
    "collection",
    "name",
    "content_type",
    "width",
    "height",
    "uploaded_at",
    "metadata",
]
FIELD_NAMES: tuple[FieldName, ...] = (
    "annotation.label",
    "tag",
    "collection",
    "name",
    "content_type",
    "width",
    "height",
    "uploaded_at",
    "metadata",
)
MULTI_VALUED: frozenset[FieldName] = frozenset({"annotation.label", "tag", "collection"})
TEXT_FIELDS: frozenset[FieldName] = MULTI_VALUED | {"name", "content_type"}
NUMBER_FIELDS: frozenset[FieldName] = frozenset({"width", "height"})

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "~"]
OPERATORS: tuple[Operator, ...] = ("=", "!=", "<", "<=", ">", ">=", "~")
ORDERING: frozenset[Operator] = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True)
class Field:
    """A field; `key` is the metadata key for `metadata.<key>`, else None."""

    name: FieldName
    key: str | None = None
    pos: int = _field(default=0, compare=False)

    def __str__(self) -> str:
        return f"metadata.{self.key}" if self.name == "metadata" else self.name


@dataclass(frozen=True)
class Value:
    """A value as written: its text (unquoted and unescaped) and whether it was quoted."""

    text: str
    quoted: bool = False
    pos: int = _field(default=0, compare=False)

    @property
    def number(self) -> Decimal | None:
        """The number a bare value spells (`12`, `-0.5`); None for quoted or other values."""
        return None if self.quoted else as_number(self.text)

    @property
    def boolean(self) -> bool | None:
        """True / False for a bare `true` / `false`; None otherwise."""
        return None if self.quoted else BOOLEANS.get(self.text)


@dataclass(frozen=True)
class Comparison:
    """`field op value`."""

    field: Field
    op: Operator
    value: Value
    pos: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Membership:
    """`field IN [values]`, or `field NOT IN [values]` when `negated`."""

    field: Field
    values: tuple[Value, ...]
    negated: bool = False
    pos: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    operand: Node
    pos: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]
    pos: int = _field(default=0, compare=False)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]
    pos: int = _field(default=0, compare=False)


Node = Comparison | Membership | Not | And | Or


def children(node: Node) -> tuple[Node, ...]:
    """The sub-expressions of `node` (none for a comparison)."""
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, And | Or):
        return node.operands
    return ()
