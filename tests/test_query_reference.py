"""A plain-Python model of the lake and a reference evaluator of the query language.

This is docs/query.md written as Python, on purpose independent of `engine.query`'s compiler
and literal helpers: the SQL tests assert `sql == reference` on the same lake. The tests at
the bottom pin the reference itself to hand-checked answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from engine.db.models import Annotation, Collection, File, Tag, collection_files
from engine.query import file_conditions, parse
from engine.query.nodes import And, Comparison, Field, Membership, Node, Not, Or, Value

NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


# -- the lake in memory ----------------------------------------------------------------------
@dataclass
class RefAnnotation:
    label: str
    source: str = "human"
    status: str = "applied"


@dataclass
class RefFile:
    unique_name: str
    content_type: str = "image"
    width: int | None = None
    height: int | None = None
    uploaded_at: datetime = datetime(2023, 1, 19, 12, tzinfo=UTC)
    metadata: dict[str, Any] = field(default_factory=dict)
    collections: list[str] = field(default_factory=list)
    annotations: list[RefAnnotation] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass
class Lake:
    files: list[RefFile]
    collections: dict[str, str] = field(default_factory=dict)  # name -> content type

    def names(self) -> set[str]:
        return {f.unique_name for f in self.files}


def store(session: Session, lake: Lake) -> None:
    """Replace whatever the database holds with `lake`."""
    session.execute(delete(File))
    session.execute(delete(Collection))
    names = {c for f in lake.files for c in f.collections} | set(lake.collections)
    collections = {
        n: Collection(name=n, content_type=lake.collections.get(n, "image")) for n in sorted(names)
    }
    files = [
        File(
            unique_name=f.unique_name,
            storage_uri=f"file:///lake/{f.unique_name}",
            sha256="0" * 64,
            size_bytes=1,
            content_type=f.content_type,
            width=f.width,
            height=f.height,
            uploaded_at=f.uploaded_at,
            metadata_=f.metadata,
        )
        for f in lake.files
    ]
    session.add_all([*collections.values(), *files])
    session.flush()
    links = [
        {"collection_id": collections[c].id, "file_id": row.id}
        for f, row in zip(lake.files, files, strict=True)
        for c in set(f.collections)
    ]
    if links:
        session.execute(insert(collection_files), links)
    annotations = [
        Annotation(file_id=row.id, label=a.label, shape="tag", source=a.source, status=a.status)
        for f, row in zip(lake.files, files, strict=True)
        for a in f.annotations
    ]
    tags = [
        Tag(file_id=row.id, name=name, source="human")
        for f, row in zip(lake.files, files, strict=True)
        for name in set(f.tags)
    ]
    session.add_all([*annotations, *tags])
    session.flush()


def sql_names(
    session: Session, query: str | None, filter: Mapping[str, Any] | None = None
) -> set[str]:
    conditions = file_conditions(query, dict(filter) if filter is not None else None)
    return set(session.scalars(select(File.unique_name).where(*conditions)))


def reference_names(
    lake: Lake, query: str | None, filter: Mapping[str, Any] | None = None
) -> set[str]:
    node = parse(query) if query and query.strip() else None
    return {
        f.unique_name
        for f in lake.files
        if (node is None or evaluate(node, f)) and matches_filter(f, filter or {})
    }


# -- the reference evaluator -----------------------------------------------------------------
def evaluate(node: Node, f: RefFile) -> bool:
    if isinstance(node, And):
        return all(evaluate(n, f) for n in node.operands)
    if isinstance(node, Or):
        return any(evaluate(n, f) for n in node.operands)
    if isinstance(node, Not):
        return not evaluate(node.operand, f)
    if isinstance(node, Comparison):
        if node.op == "!=":
            return not leaf(f, node.field, "=", node.value)
        return leaf(f, node.field, node.op, node.value)
    assert isinstance(node, Membership)
    found = any(leaf(f, node.field, "=", v) for v in node.values)
    return not found if node.negated else found


def compare(a: Any, op: str, b: Any) -> bool:
    return bool({"=": a == b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def text_matches(stored: str, op: str, text: str) -> bool:
    if op == "~":
        return text.lower() in stored.lower()
    return compare(stored, op, text)  # Python orders str by code point, like COLLATE "C"


def leaf(f: RefFile, fld: Field, op: str, value: Value) -> bool:
    name = fld.name
    if name == "annotation.label":
        return any(
            text_matches(a.label, op, value.text) for a in f.annotations if a.status == "applied"
        )
    if name == "tag":
        return any(text_matches(t, op, value.text) for t in f.tags)
    if name == "collection":
        return any(text_matches(c, op, value.text) for c in f.collections)
    if name == "name":
        return text_matches(f.unique_name, op, value.text)
    if name == "content_type":
        return text_matches(f.content_type, op, value.text)
    if name in ("width", "height"):
        stored = getattr(f, name)
        return stored is not None and compare(Decimal(stored), op, Decimal(value.text))
    if name == "uploaded_at":
        return time_matches(f.uploaded_at, op, value.text)
    assert fld.key is not None
    return metadata_matches(f.metadata, fld.key, op, value)


def metadata_matches(metadata: dict[str, Any], key: str, op: str, value: Value) -> bool:
    if key not in metadata:
        return False
    stored = metadata[key]
    number = Decimal(value.text) if not value.quoted and NUMBER.fullmatch(value.text) else None
    boolean = {"true": True, "false": False}.get(value.text) if not value.quoted else None
    if isinstance(stored, str):
        if op in ("~", "="):
            return text_matches(stored, op, value.text)
        return number is None and boolean is None and compare(stored, op, value.text)
    if isinstance(stored, bool):
        return op == "=" and boolean is not None and stored == boolean
    if isinstance(stored, int | float):
        return number is not None and op != "~" and compare(Decimal(repr(stored)), op, number)
    return False  # null, list, object


def time_range(text: str) -> tuple[datetime, datetime | None, bool]:
    """(start, end of the day or None, is a date) for an ISO date or datetime (naive = UTC)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), None, False
    start = datetime.combine(day, time(), UTC)
    return start, (start + timedelta(days=1) if day < date.max else None), True


def time_matches(stored: datetime, op: str, text: str) -> bool:
    start, end, is_date = time_range(text)
    if not is_date:
        return compare(stored, op, start)
    in_or_before_day = end is None or stored < end
    return {
        "=": start <= stored and in_or_before_day,
        "<": stored < start,
        "<=": in_or_before_day,
        ">": not in_or_before_day,
        ">=": stored >= start,
    }[op]


def iso(value: str | date) -> str:
    return value if isinstance(value, str) else value.isoformat()


def matches_filter(f: RefFile, flt: Mapping[str, Any]) -> bool:
    kinds = flt.get("annotation_types") or []
    applied = {a.source for a in f.annotations if a.status == "applied"}
    labelled = applied & {"human", "machine"}
    if kinds and not any((k == "raw" and not labelled) or k in labelled for k in kinds):
        return False
    if flt.get("from_date") and f.uploaded_at < time_range(iso(flt["from_date"]))[0]:
        return False
    if flt.get("to_date"):
        start, end, is_date = time_range(iso(flt["to_date"]))
        if is_date:
            return end is None or f.uploaded_at < end
        return f.uploaded_at <= start
    return True


# -- the reference pinned to hand-checked answers -------------------------------------------
SAMPLE = [
    RefFile(
        "a",
        metadata={"k": 12, "s": "cam 2"},
        width=640,
        annotations=[RefAnnotation("Bird"), RefAnnotation("cat", status="proposed")],
    ),
    RefFile("b", metadata={"k": "12"}, content_type="video", tags=["dog"]),
    RefFile("c", metadata={"k": True}, width=12, collections=["x"]),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("annotation.label=Bird", {"a"}),
        ("annotation.label=cat", set()),
        ("annotation.label!=Bird", {"b", "c"}),
        ("metadata.k=12", {"a", "b"}),
        ('metadata.k="12"', {"b"}),
        ("metadata.k>11", {"a"}),
        ("metadata.k=true", {"c"}),
        ("metadata.k!=12", {"c"}),
        ("metadata.s~CAM", {"a"}),
        ("metadata.missing!=x", {"a", "b", "c"}),
        ("width>=12 AND NOT tag=dog", {"a", "c"}),
        ("width!=640", {"b", "c"}),
        ("collection IN [x, y] OR content_type=video", {"b", "c"}),
        ("tag NOT IN [dog]", {"a", "c"}),
    ],
)
def test_reference_evaluator(query: str, expected: set[str]) -> None:
    assert reference_names(Lake(SAMPLE), query) == expected
