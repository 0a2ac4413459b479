"""YOLO (Ultralytics / Darknet) label folders.

One `<stem>.txt` per image, one box (`cls cx cy w h [conf]`) or polygon (`cls x1 y1 ...`) per
line, normalized to 0..1; class names given, or from `data.yaml` or `classes.txt` / `*.names`.
An empty label file is an image with no objects. The layout and matching: docs/annotations.md.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DocumentTooLarge, InvalidDocument
from engine.lake.formats.matching import normalize_path
from engine.lake.formats.parsed import (
    ParsedAnnotation,
    ParsedImage,
    Problems,
    number,
)
from engine.textformats import TextLimits, load_yaml, shown


def class_names(
    *,
    names: list[str] | None,
    data_yaml: str | None,
    classes_txt: str | None,
    document: str = "The YOLO class list",
    limits: TextLimits | None = None,
) -> dict[int, str]:
    problems = Problems(document)
    found: dict[int, str] = {}
    if names:
        found = dict(enumerate(names))
    elif data_yaml:
        found = _yaml_names(data_yaml, problems, limits)
    elif classes_txt:
        lines = [line.strip() for line in classes_txt.splitlines()]
        found = dict(enumerate(line for line in lines if line))
    else:
        problems.add(
            "$",
            "names",
            "no class names: put data.yaml (with `names:`) or "
            "classes.txt (one name per line) in the folder.",
        )
    for index, name in found.items():
        if not isinstance(name, str) or not name.strip():
            problems.add(
                f"names[{index}]", "", f"class names must be non-empty strings (got {shown(name)})."
            )
    problems.raise_if_any()
    return {index: name.strip() for index, name in found.items()}


def _yaml_names(text: str, problems: Problems, limits: TextLimits | None) -> dict[int, str]:
    try:
        data = load_yaml(text, what="data.yaml", limits=limits)
    except DocumentTooLarge:
        raise
    except InvalidDocument as exc:
        problems.add("data.yaml", "", exc.message.removeprefix("data.yaml").lstrip(": "))
        return {}
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return dict(enumerate(names))
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        return dict(names)
    problems.add("data.yaml", "names", "needs `names:` as a list or an {id: name} mapping.")
    return {}


def label_key(path: str) -> str:
    """`labels\\train\\a.txt` -> `labels/train/a` (the stem path the image is matched by)."""
    key = normalize_path(path)
    return key[:-4] if key.lower().endswith(".txt") else key


def parse(
    labels: dict[str, str], *, names: dict[int, str], document: str = "The YOLO labels"
) -> list[ParsedImage]:
    problems = Problems(document)
    images: list[ParsedImage] = []
    for path in sorted(labels):
        image = ParsedImage(where=path, key=label_key(path), match="stem")
        for number_, line in enumerate(labels[path].splitlines(), start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                ann = _line(text, f"{path}:{number_}", names, problems)
                if ann is not None:
                    image.annotations.append(ann)
        images.append(image)
    problems.raise_if_any()
    return images


def _line(
    text: str, where: str, names: dict[int, str], problems: Problems
) -> ParsedAnnotation | None:
    tokens = text.split()
    values: list[float] = []
    for token in tokens:
        value = _float(token)
        if value is None:
            problems.add(where, "line", f"{token!r} is not a number.")
            return None
        values.append(value)
    cls = values[0]
    if cls != int(cls) or int(cls) not in names:
        problems.add(
            where,
            "class",
            f"class {tokens[0]} is not in the class list "
            f"(0..{max(names, default=-1)}); fix the label or the "
            "names in data.yaml / classes.txt.",
        )
        return None
    label = names[int(cls)]
    coords = values[1:]
    confidence: float | None = None
    if len(coords) in (4, 5):
        cx, cy, w, h = coords[:4]
        if len(coords) == 5:
            confidence = coords[4]
            if not 0 <= confidence <= 1:
                problems.add(where, "confidence", f"must be between 0 and 1 (got {confidence:g}).")
                return None
        if w <= 0 or h <= 0:
            problems.add(where, "box", f"width and height must be > 0 (got w={w:g}, h={h:g}).")
            return None
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        return ParsedAnnotation(
            where=where,
            field="box",
            label=label,
            shape="box",
            values=(box,),
            normalized=True,
            confidence=confidence,
        )
    if len(coords) >= 6 and len(coords) % 2 == 0:
        points = tuple((coords[i], coords[i + 1]) for i in range(0, len(coords), 2))
        return ParsedAnnotation(
            where=where,
            field="polygon",
            label=label,
            shape="polygon",
            values=points,
            normalized=True,
        )
    problems.add(
        where,
        "line",
        f"has {len(tokens)} values; expected 5 (cls cx cy w h), 6 "
        "(cls cx cy w h conf) or 1 + 2n with n >= 3 (cls x1 y1 ... xn yn).",
    )
    return None


def _float(token: str) -> float | None:
    try:
        value: Any = float(token)
    except ValueError:
        return None
    return number(value)
