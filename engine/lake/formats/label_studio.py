"""Label Studio tasks JSON (a project's JSON export): a list of tasks, each with `data`, the
human `annotations[].result` and the machine `predictions[].result`.

Rectangles (`rectanglelabels`) become boxes, or polygons when rotated; `polygonlabels` polygons;
`choices` tags; other result types are skipped. Regions are percent of `original_width` /
`original_height` (the stated size must equal the lake's), else of the lake's size. Cancelled
annotations are skipped. The image: `data.metalake_path` when a MetaLake export wrote it, else
the path inside `data.image`'s URL. Mapping: docs/annotations.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from engine.lake.formats.parsed import (
    ParsedAnnotation,
    ParsedImage,
    Problems,
    Shape,
    number,
    polygon_points,
    read_confidence,
    read_label,
)

PATH_KEY = "metalake_path"
IMAGE_KEY = "image"
LABEL_KEYS: dict[str, Shape] = {
    "rectanglelabels": "box",
    "polygonlabels": "polygon",
    "choices": "tag",
}
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names


@dataclass
class LabelStudioImport:
    """The same images twice: with their human annotations, and with their machine ones."""

    human: list[ParsedImage] = field(default_factory=list)
    machine: list[ParsedImage] = field(default_factory=list)


def parse(data: Any, *, document: str = "The Label Studio import") -> LabelStudioImport:
    problems = Problems(document)
    if not isinstance(data, list):
        problems.add(
            "$", "", 'a Label Studio export is a JSON list of tasks ([{"data": ...}, ...]).'
        )
        problems.raise_if_any()
    parsed = LabelStudioImport()
    for t, task in enumerate(data):
        where = f"tasks[{t}]"
        key = _image_key(task, where, problems)
        if key is None:
            continue
        human = ParsedImage(where=where, key=key)
        machine = ParsedImage(where=where, key=key)
        for a, annotation in enumerate(_entries(task, "annotations", where, problems)):
            if not annotation.get("was_cancelled"):
                _results(annotation, f"{where}.annotations[{a}]", human, problems)
        for p, prediction in enumerate(_entries(task, "predictions", where, problems)):
            _results(prediction, f"{where}.predictions[{p}]", machine, problems)
        human.declared_size = human.declared_size or machine.declared_size
        machine.declared_size = human.declared_size
        parsed.human.append(human)
        parsed.machine.append(machine)
    problems.raise_if_any()
    return parsed


def _image_key(task: Any, where: str, problems: Problems) -> str | None:
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        problems.add(where, "data", 'each task is an object with a "data" object.')
        return None
    path = data.get(PATH_KEY)
    if isinstance(path, str) and path.strip():
        return path.strip()
    url = data.get(IMAGE_KEY)
    if not isinstance(url, str):
        url = next((v for v in data.values() if isinstance(v, str) and v.strip()), None)
    if url is None or not url.strip():
        problems.add(where, "data.image", "needs the image's URL or path as a string.")
        return None
    return image_path(url)


def image_path(url: str) -> str:
    """The file path a task's image URL names: `/data/local-files/?d=a/b.jpg` -> `a/b.jpg`,
    `/data/upload/3/0f1c2b3a-b.jpg` -> `b.jpg`, `s3://bucket/a/b.jpg` -> `a/b.jpg`, an
    http(s) URL -> its path; a plain relative path as it is."""
    parts = urlsplit(url.strip())
    local = parse_qs(parts.query).get("d")
    if local:
        return local[0]
    path = unquote(parts.path).lstrip("/")
    if path.startswith("data/upload/"):
        name = path.rpartition("/")[2]
        return _UPLOAD_PREFIX.sub("", name)
    return path


def _entries(task: dict[str, Any], key: str, where: str, problems: Problems) -> list[Any]:
    entries = task.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.add(where, key, "must be a list of objects with a result list.")
        return []
    return entries


def _results(entry: dict[str, Any], where: str, image: ParsedImage, problems: Problems) -> None:
    results = entry.get("result") or []
    if not isinstance(results, list):
        problems.add(where, "result", "must be a list of regions.")
        return
    fallback = read_confidence(entry.get("score"), where, problems, "score")
    for r, result in enumerate(results):
        at = f"{where}.result[{r}]"
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            problems.add(at, "value", 'each result is an object with a "value" object.')
            continue
        kind = result.get("type")
        if kind not in LABEL_KEYS:
            continue  # text areas, key points, relations...: not annotations the lake stores
        size = _size(result, at, problems)
        if size is not None:
            if image.declared_size and image.declared_size != size:
                problems.add(
                    at,
                    "original_width",
                    f"says {size[0]}x{size[1]} but another region of the task says "
                    f"{image.declared_size[0]}x{image.declared_size[1]}.",
                )
                continue
            image.declared_size = size
        confidence = read_confidence(result.get("score"), at, problems, "score")
        for label in _labels(result["value"], kind, at, problems):
            ann = _annotation(
                result["value"], LABEL_KEYS[kind], label, size, at, problems, confidence
            )
            if ann is not None:
                if ann.confidence is None and fallback is not None:
                    ann = replace(ann, confidence=fallback)
                image.annotations.append(ann)


def _size(result: dict[str, Any], where: str, problems: Problems) -> tuple[int, int] | None:
    width, height = number(result.get("original_width")), number(result.get("original_height"))
    if width is None and height is None:
        return None
    if not (width and height and width > 0 and height > 0) or not (
        width.is_integer() and height.is_integer()
    ):
        problems.add(where, "original_width", "original_width and original_height must be > 0.")
        return None
    return int(width), int(height)


def _labels(value: dict[str, Any], kind: str, where: str, problems: Problems) -> list[str]:
    raw = value.get(kind)
    if not isinstance(raw, list) or not raw:
        problems.add(where, f"value.{kind}", "needs a list with at least one label.")
        return []
    labels = [read_label(label, where, problems, f"value.{kind}") for label in raw]
    return [label for label in labels if label is not None]


def _annotation(
    value: dict[str, Any],
    shape: Shape,
    label: str,
    size: tuple[int, int] | None,
    where: str,
    problems: Problems,
    confidence: float | None,
) -> ParsedAnnotation | None:
    # Percent of the stated size -> pixels; without a stated size, fractions of the lake's.
    scale = (size[0] / 100, size[1] / 100) if size else (0.01, 0.01)
    values: tuple[tuple[float, ...], ...]
    if shape == "tag":
        values = ()
    elif shape == "box":
        box = [number(value.get(k)) for k in ("x", "y", "width", "height")]
        if any(v is None for v in box):
            problems.add(where, "value", "a rectangle needs x, y, width and height as numbers.")
            return None
        x, y, w, h = (v or 0.0 for v in box)
        rotation = number(value.get("rotation")) or 0.0
        if rotation % 360:
            if size is None:
                problems.add(
                    where, "value.rotation", "a rotated rectangle needs original_width/height."
                )
                return None
            shape, values = "polygon", _rotated(x, y, w, h, rotation, scale)
        else:
            values = ((x * scale[0], y * scale[1], (x + w) * scale[0], (y + h) * scale[1]),)
    else:
        points = polygon_points(value.get("points"), where, "value.points", problems)
        if points is None:
            return None
        values = tuple((px * scale[0], py * scale[1]) for px, py in points)
    return ParsedAnnotation(
        where=where,
        field="value",
        label=label,
        shape=shape,
        values=values,
        normalized=size is None,
        confidence=confidence,
    )


def _rotated(
    x: float, y: float, w: float, h: float, degrees: float, scale: tuple[float, float]
) -> tuple[tuple[float, ...], ...]:
    """The corners of a rectangle turned `degrees` clockwise about its top-left, in pixels."""
    ox, oy, pw, ph = x * scale[0], y * scale[1], w * scale[0], h * scale[1]
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return tuple(
        (ox + dx * cos - dy * sin, oy + dx * sin + dy * cos)
        for dx, dy in ((0, 0), (pw, 0), (pw, ph), (0, ph))
    )
