"""The MetaLake annotation JSON: what `upload_annotations_for_folder` reads and
`download_annotations` writes.

An `images` list, each entry an `image` path and its `annotations` (`bbox`, `polygon` or
`keypoints`, with `label`, optional `confidence`, `metadata`, `frame_index`); other keys are
ignored, so a downloaded file uploads back unchanged. The format: docs/annotations.md.
"""

from __future__ import annotations

from typing import Any, Literal

from engine.lake.formats.parsed import (
    ParsedAnnotation,
    ParsedImage,
    Problems,
    Shape,
    box_from_xywh,
    keypoint_triples,
    polygon_points,
    read_confidence,
    read_frame_index,
    read_label,
    read_metadata,
)

ShapeType = Literal["rectangle", "box", "polygon", "mixed"]
SHAPE_KEYS: dict[str, Shape] = {"bbox": "box", "polygon": "polygon", "keypoints": "keypoints"}
FORMAT_HINT = (
    '{"images": [{"image": "<path>", "annotations": [{"bbox": [x, y, w, h], "label": "..."}]}]}'
)


def parse(
    data: Any, *, shape_type: ShapeType, normalized: bool, document: str = "The annotation file"
) -> list[ParsedImage]:
    """Parse the whole document; raises `InvalidAnnotations` listing every problem."""
    problems = Problems(document)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        problems.add("$", "images", f"the file must be an object like {FORMAT_HINT}.")
        problems.raise_if_any()
    assert isinstance(images, list)
    parsed: list[ParsedImage] = []
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(entry, dict):
            problems.add(
                where,
                "",
                f'must be an object with "image" and "annotations" (got {type(entry).__name__}).',
            )
            continue
        key = entry.get("image")
        if not isinstance(key, str) or not key.strip():
            problems.add(where, "image", "needs the image's path or file name as a string.")
            continue
        raw_annotations = entry.get("annotations", [])
        if not isinstance(raw_annotations, list):
            problems.add(where, "annotations", "must be a list.")
            continue
        image = ParsedImage(where=where, key=key.strip())
        for j, raw in enumerate(raw_annotations):
            ann = _annotation(raw, f"{where}.annotations[{j}]", shape_type, normalized, problems)
            if ann is not None:
                image.annotations.append(ann)
        parsed.append(image)
    problems.raise_if_any()
    return parsed


def _annotation(
    raw: Any, where: str, shape_type: ShapeType, normalized: bool, problems: Problems
) -> ParsedAnnotation | None:
    if not isinstance(raw, dict):
        problems.add(where, "", f"must be an object (got {type(raw).__name__}).")
        return None
    key = _shape_key(raw, where, shape_type, problems)
    label = read_label(raw.get("label"), where, problems)
    confidence = read_confidence(raw.get("confidence"), where, problems)
    metadata = read_metadata(raw.get("metadata"), where, problems)
    frame_index = read_frame_index(raw.get("frame_index"), where, problems)
    if key is None or label is None:
        return None
    shape: Shape = SHAPE_KEYS.get(key, "tag")
    if shape == "box":
        values = box_from_xywh(raw[key], where, key, problems)
    elif shape == "polygon":
        values = polygon_points(raw[key], where, key, problems)
    elif shape == "keypoints":
        values = keypoint_triples(raw[key], where, key, problems)
    else:
        values = ()
    if values is None:
        return None
    return ParsedAnnotation(
        where=where,
        field=key,
        label=label,
        shape=shape,
        values=values,
        normalized=normalized,
        confidence=confidence,
        metadata=metadata,
        frame_index=frame_index,
    )


def _shape_key(
    raw: dict[str, Any], where: str, shape_type: ShapeType, problems: Problems
) -> str | None:
    present = [k for k in SHAPE_KEYS if raw.get(k) is not None]
    if shape_type == "mixed":
        if len(present) > 1:
            problems.add(
                where,
                present[1],
                f"give one of bbox / polygon / keypoints, not {' and '.join(present)}.",
            )
            return None
        return present[0] if present else "tag"
    wanted = "polygon" if shape_type == "polygon" else "bbox"
    if wanted in present:
        return wanted
    other = (
        f' (it has "{present[0]}"; pass annotation_shape_type="mixed" to upload mixed shapes)'
        if present
        else ""
    )
    example = "[[x, y], ...]" if wanted == "polygon" else "[x, y, width, height]"
    problems.add(
        where,
        wanted,
        f'annotation_shape_type is "{shape_type}", so each annotation '
        f'needs "{wanted}": {example}{other}.',
    )
    return None


def record(
    *,
    label: str,
    shape: str,
    geometry: dict[str, Any],
    confidence: float | None,
    source: str,
    metadata: dict[str, Any],
    frame_index: int | None,
    model_version_id: int | None,
    operation_id: str | None,
) -> dict[str, Any]:
    """One stored annotation in this format (pixel coordinates, `bbox` as x, y, w, h)."""
    entry: dict[str, Any] = {"label": label}
    if shape == "box":
        x1, y1 = geometry["x1"], geometry["y1"]
        entry["bbox"] = [x1, y1, round(geometry["x2"] - x1, 4), round(geometry["y2"] - y1, 4)]
    elif shape == "polygon":
        entry["polygon"] = geometry.get("points", [])
    elif shape == "keypoints":
        entry["keypoints"] = geometry.get("points", [])
    entry["confidence"] = confidence
    entry["source"] = source
    entry["metadata"] = metadata
    if frame_index is not None:
        entry["frame_index"] = frame_index
    if model_version_id is not None:
        entry["model_version_id"] = model_version_id
    if operation_id is not None:
        entry["operation_id"] = operation_id
    return entry
