"""JSON and YAML documents from users, read within limits: one size cap, one nesting cap, and a
budget for what YAML aliases may add.

Every document the engine parses from a request or a bundle (annotation imports' `data_yaml`,
`label_list.yaml`, `metalake.yaml`, JSON form fields and query parameters) goes through
`load_json` / `load_yaml`, which raise `InvalidDocument` (400) or `DocumentTooLarge` (413).
A few hundred bytes of YAML aliases can stand for billions of values ("billion laughs"), and
thousands of brackets exhaust the stack of any recursive code that walks the result.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic_core import from_json

from engine.config import Settings
from engine.errors import DocumentTooLarge, InvalidDocument

MAX_DEPTH = 100  # nested lists / mappings; real documents use fewer than 10
ALIAS_BUDGET = 10_000  # values YAML aliases may add to a document beyond those written out
SIZE_SETTING = "METALAKE_DOCUMENT_MAX_BYTES"
EXCERPT = 200  # characters of a user's text quoted back in a message
# libyaml's SafeLoader where PyYAML was built with it (its wheels are), else the pure-Python one
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class TextLimits:
    """How large and how deep a document may be (`Settings.document_max_bytes` at the API)."""

    max_bytes: int = 4 << 20
    max_depth: int = MAX_DEPTH
    alias_budget: int = ALIAS_BUDGET


def limits_of(settings: Settings) -> TextLimits:
    return TextLimits(max_bytes=settings.document_max_bytes)


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """`text` cut to `limit` characters, with "…" when cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def shown(value: object) -> str:
    """`repr` cut short, at every level: a structure built from a small document can have a
    full repr far larger than the document."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, 80, 80
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    return short.repr(value)


def check_size(data: str | bytes, what: str, limits: TextLimits) -> None:
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > limits.max_bytes:
        raise DocumentTooLarge(
            f"{what} is larger than {limits.max_bytes:,} bytes ({SIZE_SETTING}); send a smaller "
            "document or ask the engine's operator to raise the limit.",
            document=what,
            reason="too_large",
            limit=limits.max_bytes,
        )


def too_deep(what: str, limit: int) -> InvalidDocument:
    return InvalidDocument(
        f"{what} is nested too deeply: more than {limit} levels of lists or mappings; flatten it.",
        document=what,
        reason="too_deep",
        limit=limit,
    )


# -- JSON ------------------------------------------------------------------------------------------
def load_json(data: str | bytes, *, what: str, limits: TextLimits | None = None) -> Any:
    """The JSON value of `data`; `InvalidDocument` naming `what` when it is not JSON, is nested
    more than `limits.max_depth` deep, or (`DocumentTooLarge`) is larger than `max_bytes`."""
    limits = limits or TextLimits()
    check_size(data, what, limits)
    try:
        value = from_json(data)
    except ValueError as exc:
        if "recursion limit exceeded" in str(exc):
            raise too_deep(what, limits.max_depth) from exc
        value = _json_module(data, what, limits)  # its error position; lone surrogate escapes
    if depth_exceeds(value, limits.max_depth):
        raise too_deep(what, limits.max_depth)
    return value


def _json_module(data: str | bytes, what: str, limits: TextLimits) -> Any:
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise too_deep(what, limits.max_depth) from exc
    except ValueError as exc:  # JSONDecodeError, bytes that are not UTF-8, a huge number
        raise not_json(what, exc) from exc


def not_json(what: str, exc: ValueError) -> InvalidDocument:
    if "digits" in str(exc) and not isinstance(exc, json.JSONDecodeError):
        return InvalidDocument(  # int()'s limit of 4,300 digits (sys.get_int_max_str_digits)
            f"{what} holds a number of more than 4,300 digits; no field takes one.",
            document=what,
            reason="number_too_long",
        )
    return InvalidDocument(
        f"{what} is not valid JSON: {excerpt(str(exc))}.", document=what, reason="syntax"
    )


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and dicts in `value` nest more than `limit` deep (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list | tuple)
        )
    return False


# -- YAML ------------------------------------------------------------------------------------------
def load_yaml(text: str, *, what: str, limits: TextLimits | None = None) -> Any:
    """The value of the YAML document `text` (safe tags only); `InvalidDocument` naming `what`
    for bad YAML, nesting deeper than `limits.max_depth`, an alias that refers to its own
    container, or aliases that would add more than `limits.alias_budget` values."""
    limits = limits or TextLimits()
    check_size(text, what, limits)
    try:
        _check_events(yaml.parse(text, Loader=_LOADER), what, limits)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit, met while scanning ahead
            raise too_deep(what, limits.max_depth) from exc
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidDocument(
            f"{what} is not valid YAML{where}: {excerpt(problem)}.", document=what, reason="syntax"
        ) from exc
    except RecursionError as exc:
        raise too_deep(what, limits.max_depth) from exc
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
        # PyYAML's constructors raise plain errors for a value its explicit tag cannot hold
        # (`!!float .nana`, `!!timestamp x`, `!!int ''`).
        raise InvalidDocument(
            f"{what} is not valid YAML: a value cannot be read as its tag says "
            f"({type(exc).__name__}: {excerpt(str(exc), 80)}); remove the `!!` tag or fix the "
            "value.",
            document=what,
            reason="tag",
        ) from exc


def _check_events(events: Iterator[yaml.Event], what: str, limits: TextLimits) -> None:
    """Depth and alias expansion from the parser's events, before anything is built: each
    anchored node's size (values inside it, aliases expanded) and height are known when it
    closes, so an alias counts as what it stands for."""
    anchored: dict[str, tuple[int, int]] = {}  # anchor -> (size, height)
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []  # open collections: [anchor, size so far, height so far]
    expanded = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= limits.max_depth:
                raise too_deep(what, limits.max_depth)
            stack.append([event.anchor, 1, 1])
            if event.anchor:
                open_anchors.add(event.anchor)
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size, height = stack.pop()
            if anchor:
                anchored[anchor] = (size, height)
                open_anchors.discard(anchor)
        elif isinstance(event, yaml.ScalarEvent):
            size, height = 1, 0
            if event.anchor:
                anchored[event.anchor] = (1, 0)
        elif isinstance(event, yaml.AliasEvent):
            anchor = event.anchor or ""
            if anchor in open_anchors:
                raise InvalidDocument(
                    f"{what}: the alias *{excerpt(anchor, 40)} refers to a list or mapping that "
                    "contains it (a value inside itself); write the values out.",
                    document=what,
                    reason="aliases",
                )
            size, height = anchored.get(anchor, (1, 0))  # an unknown anchor: load() reports it
            expanded += size
            if expanded > limits.alias_budget:
                raise InvalidDocument(
                    f"{what}: its aliases (`*name`) stand for more than {limits.alias_budget:,} "
                    "values; write the values out instead of repeating aliases.",
                    document=what,
                    reason="aliases",
                    limit=limits.alias_budget,
                )
            if len(stack) + height > limits.max_depth:
                raise too_deep(what, limits.max_depth)
        else:
            continue
        if stack:
            parent = stack[-1]
            parent[1] += size
            parent[2] = max(parent[2], height + 1)
