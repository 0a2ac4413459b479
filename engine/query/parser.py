"""Query text -> AST (`nodes.py`), with every error as `InvalidQuery` naming its position.

The grammar (`grammar.lark`) fixes the syntax; this module checks what it cannot: field names,
metadata keys, and that each value suits its field (a number for `width`, a date for
`uploaded_at`). Lark's exceptions never leave this module.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from importlib import resources
from typing import Any, NoReturn, cast

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from engine.errors import InvalidQuery
from engine.query.literals import as_number, as_time
from engine.query.nodes import (
    FIELD_NAMES,
    NUMBER_FIELDS,
    OPERATORS,
    ORDERING,
    And,
    Comparison,
    Field,
    FieldName,
    Membership,
    Node,
    Not,
    Operator,
    Or,
    Value,
    children,
)

MAX_LENGTH = 10_000
MAX_DEPTH = 40
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE = re.compile(r"\\([\s\S])")


class _Problem(Exception):
    """An error found while building the AST; `parse` turns it into `InvalidQuery`."""

    def __init__(self, message: str, position: int, expected: list[str]) -> None:
        super().__init__(message)
        self.message, self.position, self.expected = message, position, expected


def parse(query: str) -> Node:
    """Parse `query` into its AST; raise `InvalidQuery` (with position) if it is not valid."""
    if not isinstance(query, str):
        raise InvalidQuery("The query must be a string.", query=repr(query), position=0)
    try:
        _check_text(query)
        node = cast(Node, _parser().parse(query))
        _check_depth(node)
    except _Problem as problem:
        raise InvalidQuery(
            problem.message, query=query, position=problem.position, expected=problem.expected
        ) from None
    except UnexpectedInput as exc:
        raise _syntax_error(query, exc) from None
    except LarkError as exc:  # any other lark failure is still the query's fault
        raise InvalidQuery(f"Invalid query: {exc}", query=query, position=0) from None
    return node


@functools.cache
def _parser() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", transformer=_Builder())


def _check_text(query: str) -> None:
    if len(query) > MAX_LENGTH:
        raise _Problem(
            f"The query is longer than {MAX_LENGTH} characters: it must end by "
            f"position {MAX_LENGTH}.",
            MAX_LENGTH,
            [],
        )
    for pos, char in enumerate(query):
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            raise _Problem(f"Invalid character {char!r} at position {pos}.", pos, [])


def _check_depth(root: Node) -> None:
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Problem(
                f"The query nests more than {MAX_DEPTH} levels deep at position {node.pos}.",
                node.pos,
                [],
            )
        stack.extend((child, depth + 1) for child in children(node))


class _Builder(Transformer[Token, Node]):
    """Lark callbacks run as the LALR parser reduces (no recursion, no parse tree)."""

    def or_expr(self, items: list[Node]) -> Or:
        return Or(tuple(items), pos=items[0].pos)

    def and_expr(self, items: list[Node]) -> And:
        return And(tuple(items), pos=items[0].pos)

    def negation(self, items: list[Any]) -> Not:
        keyword, operand = items
        return Not(operand, pos=_at(keyword))

    def compare(self, items: list[Any]) -> Comparison:
        field_, op_token, value = items
        op: Operator = op_token.value
        _check_value(field_, op, value, _at(op_token))
        return Comparison(field_, op, value, pos=field_.pos)

    def in_list(self, items: list[Any]) -> Membership:
        field_, values = items
        for value in values:
            _check_value(field_, "=", value, value.pos)
        return Membership(field_, values, negated=False, pos=field_.pos)

    def not_in_list(self, items: list[Any]) -> Membership:
        field_, _, values = items
        return replace(self.in_list([field_, values]), negated=True)

    def values(self, items: list[Value]) -> tuple[Value, ...]:
        return tuple(items)

    def value(self, items: list[Token]) -> Value:
        (token,) = items
        if token.type == "STRING":
            return Value(_unquote(token.value), quoted=True, pos=_at(token))
        return Value(token.value, quoted=False, pos=_at(token))

    def field(self, items: list[Token]) -> Field:
        (token,) = items
        text: str = token.value
        if token.type == "QUOTED_FIELD":
            return Field("metadata", _unquote(text[len("metadata.") :]), pos=_at(token))
        if text.startswith("metadata."):
            key = text[len("metadata.") :]
            if not _BARE_KEY.fullmatch(key):
                at = _at(token) + len("metadata.")
                _fail(
                    f"Invalid metadata key {key!r} at position {at}: a bare key is letters, "
                    f"digits, '_' and '-'; quote any other key, e.g. metadata.\"{key}\"",
                    at,
                    ["a metadata key"],
                )
            return Field("metadata", key, pos=_at(token))
        for name in FIELD_NAMES:
            if text == name and name != "metadata":
                return Field(name, pos=_at(token))
        fields = [name if name != "metadata" else "metadata.<key>" for name in FIELD_NAMES]
        _fail(
            f"Unknown field {_show(text)} at position {_at(token)}: expected one of "
            f"{', '.join(fields)}",
            _at(token),
            fields,
        )


def _check_value(field_: Field, op: Operator, value: Value, op_pos: int) -> None:
    """Reject a value or operator that cannot apply to `field_` (rules in docs/query.md)."""
    name: FieldName = field_.name
    if name in NUMBER_FIELDS or name == "uploaded_at":
        kind = "a number" if name in NUMBER_FIELDS else "a date or datetime (ISO 8601)"
        if op == "~":
            _fail(
                f"Operator '~' at position {op_pos} does not apply to {name}, which is "
                f"{kind}: expected one of = != < <= > >=",
                op_pos,
                list(OPERATORS[:-1]),
            )
        if name in NUMBER_FIELDS:
            ok = as_number(value.text) is not None
        else:
            ok = as_time(value.text) is not None
        if not ok:
            _fail(
                f"Invalid value {_show(value.text)} for {name} at position {value.pos}: "
                f"expected {kind}",
                value.pos,
                [kind],
            )
    elif name == "metadata" and op in ORDERING and value.boolean is not None:
        _fail(
            f"Cannot order by boolean {value.text} at position {value.pos}: use = or != "
            f"(or quote it to compare text)",
            value.pos,
            ["a number", "a text value"],
        )


def _at(token: Token) -> int:
    return token.start_pos or 0


def _unquote(text: str) -> str:
    return _ESCAPE.sub(r"\1", text[1:-1])


def _show(text: str) -> str:
    return repr(text if len(text) <= 30 else text[:27] + "...")


def _fail(message: str, position: int, expected: list[str]) -> NoReturn:
    raise _Problem(message, position, expected)


# -- syntax errors ---------------------------------------------------------------------------
_OPERATORS_TEXT = "an operator (= != < <= > >= ~)"


def _describe(terminals: set[str]) -> list[str]:
    """What the parser would have accepted, in words, in a stable order."""
    described: list[str] = []
    if "QUOTED_FIELD" in terminals:
        described.append("a field")
    if "NOT" in terminals and "OPERATOR" not in terminals:
        described.append("NOT")
    if "LPAR" in terminals:
        described.append("'('")
    if "QUOTED_FIELD" not in terminals and terminals & {"WORD", "STRING"}:
        described.append("a value")
    if "LSQB" in terminals:
        described.append("'['")
    if "OPERATOR" in terminals:
        described.append(_OPERATORS_TEXT)
    if "_IN" in terminals:
        described.append("IN")
    if "NOT" in terminals and "OPERATOR" in terminals:
        described.append("NOT IN")
    for terminal, words in (
        ("COMMA", "','"),
        ("RSQB", "']'"),
        ("_AND", "AND"),
        ("_OR", "OR"),
        ("RPAR", "')'"),
        ("$END", "end of query"),
    ):
        if terminal in terminals:
            described.append(words)
    return described


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _syntax_error(query: str, exc: UnexpectedInput) -> InvalidQuery:
    interactive = getattr(exc, "interactive_parser", None)
    terminals: set[str] = set(interactive.accepts()) if interactive is not None else set()
    if isinstance(exc, UnexpectedToken):
        terminals = terminals or set(exc.accepts or exc.expected)
        if exc.token.type == "$END":
            position, found = len(query), "end of query"
        else:
            position, found = _at(exc.token), _show(str(exc.token.value))
        what = f"Unexpected {found}"
    else:
        position = exc.pos_in_stream if exc.pos_in_stream is not None else 0
        char = query[position] if position < len(query) else ""
        if isinstance(exc, UnexpectedCharacters) and char and char in "\"'":
            expected = [f"a closing {char}"]
            return InvalidQuery(
                f"Unterminated string at position {position}: expected {expected[0]}",
                query=query,
                position=position,
                expected=expected,
            )
        what = f"Unexpected character {char!r}"
    expected = _describe(terminals)
    message = f"{what} at position {position}"
    if expected:
        message += f": expected {_join(expected)}"
    return InvalidQuery(message, query=query, position=position, expected=expected)
