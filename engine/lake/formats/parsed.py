"""The neutral form every annotation format parses into, and the problem list parsers fill.

A parser never touches the database: it turns a document (our JSON, COCO, YOLO) into
`ParsedImage`s whose annotations still carry the document's coordinates (pixels or 0..1), each
with the location it came from (`images[3].annotations[0]`, `labels/a.txt:4`) so that every
error can name it. `engine.lake.formats.geometry` converts them to pixel geometry once the image
is matched to a file and its size is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from engine.errors import InvalidAnnotations

Shape = Literal["box", "polygon", "keypoints", "tag"]
MatchBy = Literal["path", "stem"]
MAX_LABEL_LENGTH = 255
MAX_REPORTED_PROBLEMS = 50


@dataclass(frozen=True)
class ParsedAnnotation:
    """One annotation as the document gave it.

    `values`: box `(x1, y1, x2, y2)`; polygon `(x, y)` points; keypoints `(x, y, v)` points;
    tag `()`. `normalized` means the values are fractions of the image's width and height.
    """

    where: str
    field: str
    label: str
    shape: Shape
    values: tuple[tuple[float, ...], ...]
    normalized: bool
    confidence: float | None = None
    metadata: dict[str, Any] = dataclass_field(default_factory=dict)
    frame_index: int | None = None


@dataclass
class ParsedImage:
    """The annotations of one image, keyed the way the document names the image.

    `match="path"`: `key` is the image's path (our JSON, COCO); `match="stem"`: the path
    without its extension (a YOLO label file names only the stem).
    """

    where: str
    key: str
    match: MatchBy = "path"
    annotations: list[ParsedAnnotation] = dataclass_field(default_factory=list)
    declared_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Problem:
    location: str
    field: str
    message: str

    def render(self) -> str:
        where = f"{self.location}.{self.field}" if self.field else self.location
        return f"{where}: {self.message}"


class Problems:
    """Collects what is wrong with a document so one error can list all of it (up to a cap)."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.items: list[Problem] = []

    def add(self, location: str, field: str, message: str) -> None:
        self.items.append(Problem(location, field, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        more = len(self.items) - 1
        suffix = (
            f" ({more} more problem{'s' if more > 1 else ''} in details.errors)" if more else ""
        )
        raise InvalidAnnotations(
            f"{self.document} is invalid; nothing was written. {first.render()}{suffix}",
            location=first.location,
            field=first.field,
            **_indexes(first.location),
            errors=[
                {"location": p.location, "field": p.field, "message": p.message}
                for p in self.items[:MAX_REPORTED_PROBLEMS]
            ],
            error_count=len(self.items),
        )


def _indexes(location: str) -> dict[str, int]:
    """`images[3].annotations[0]` -> {"image_index": 3, "annotation_index": 0}."""
    found: dict[str, int] = {}
    for part in location.split("."):
        name, bracket, rest = part.partition("[")
        if bracket and rest.endswith("]") and rest[:-1].isdigit():
            key = {"images": "image_index", "annotations": "annotation_index"}.get(name)
            if key:
                found[key] = int(rest[:-1])
    return found


# -- value readers shared by the parsers ------------------------------------------------------
def number(value: Any) -> float | None:
    """A finite int/float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def numbers(value: Any, count: int | None = None) -> list[float] | None:
    """A list of finite numbers (of exactly `count` items when given), else None."""
    if not isinstance(value, list | tuple):
        return None
    result = [number(v) for v in value]
    if any(v is None for v in result) or (count is not None and len(result) != count):
        return None
    return [v for v in result if v is not None]


def read_label(raw: Any, where: str, problems: Problems, field_name: str = "label") -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.add(where, field_name, f"needs a non-empty string label (got {raw!r}).")
        return None
    label = raw.strip()
    if len(label) > MAX_LABEL_LENGTH:
        problems.add(
            where,
            field_name,
            f"labels are at most {MAX_LABEL_LENGTH} characters (got {len(label)}).",
        )
        return None
    return label


def read_confidence(
    raw: Any, where: str, problems: Problems, field_name: str = "confidence"
) -> float | None:
    if raw is None:
        return None
    value = number(raw)
    if value is None or not 0 <= value <= 1:
        problems.add(where, field_name, f"must be a number between 0 and 1 (got {raw!r}).")
        return None
    return value


def read_metadata(raw: Any, where: str, problems: Problems) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(where, "metadata", f"must be an object (got {type(raw).__name__}).")
        return {}
    return raw


def read_frame_index(raw: Any, where: str, problems: Problems) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        problems.add(where, "frame_index", f"must be an integer >= 0 (got {raw!r}).")
        return None
    return raw


def box_from_xywh(
    raw: Any, where: str, field_name: str, problems: Problems
) -> tuple[tuple[float, ...], ...] | None:
    """COCO-style `[x, y, w, h]` (top-left corner, width, height) -> `((x1, y1, x2, y2),)`."""
    values = numbers(raw, 4)
    if values is None:
        problems.add(
            where, field_name, f"must be [x, y, width, height] as 4 numbers (got {_short(raw)})."
        )
        return None
    x, y, w, h = values
    if w <= 0 or h <= 0:
        problems.add(
            where, field_name, f"width and height must be > 0 (got width={w:g}, height={h:g})."
        )
        return None
    return ((x, y, x + w, y + h),)


def polygon_points(
    raw: Any, where: str, field_name: str, problems: Problems
) -> tuple[tuple[float, ...], ...] | None:
    """`[[x, y], ...]` or the flat `[x1, y1, x2, y2, ...]`, at least 3 points."""
    points: list[tuple[float, ...]] = []
    if isinstance(raw, list) and raw and all(isinstance(p, list | tuple) for p in raw):
        for point in raw:
            pair = numbers(point, 2)
            if pair is None:
                problems.add(where, field_name, f"each point must be [x, y] (got {_short(point)}).")
                return None
            points.append(tuple(pair))
    else:
        flat = numbers(raw)
        if flat is None or len(flat) % 2:
            problems.add(where, field_name, f"must be a list of [x, y] points (got {_short(raw)}).")
            return None
        points = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    if len(points) < 3:
        problems.add(where, field_name, f"a polygon needs at least 3 points (got {len(points)}).")
        return None
    return tuple(points)


def keypoint_triples(
    raw: Any, where: str, field_name: str, problems: Problems
) -> tuple[tuple[float, ...], ...] | None:
    """`[[x, y, v], ...]` or the flat COCO `[x1, y1, v1, ...]`; v is 0 (absent), 1 or 2."""
    if isinstance(raw, list) and raw and all(isinstance(p, list | tuple) for p in raw):
        triples = [numbers(p, 3) for p in raw]
    else:
        flat = numbers(raw)
        triples = (
            [flat[i : i + 3] for i in range(0, len(flat), 3)]
            if flat is not None and flat and len(flat) % 3 == 0
            else [None]
        )
    if any(t is None or t[2] not in (0, 1, 2) for t in triples):
        problems.add(
            where,
            field_name,
            f"must be a list of [x, y, v] points with v in 0 (absent), 1, 2 (got {_short(raw)}).",
        )
        return None
    return tuple(tuple(t) for t in triples if t is not None)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
