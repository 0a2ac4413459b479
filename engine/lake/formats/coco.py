"""COCO object-detection / instance-segmentation JSON.

Polygon segmentations become `polygon`s (one per ring), others a `box`; visible keypoints an
extra `keypoints` annotation; `score` the confidence. `file_name` is matched like the MetaLake
JSON's `image`, and a stated width/height must equal the lake's. Mapping: docs/annotations.md.
"""

from __future__ import annotations

from typing import Any

from engine.lake.formats.parsed import (
    ParsedAnnotation,
    ParsedImage,
    Problems,
    box_from_xywh,
    keypoint_triples,
    number,
    polygon_points,
    read_confidence,
    read_label,
)


def parse(data: Any, *, document: str = "The COCO file") -> list[ParsedImage]:
    problems = Problems(document)
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        problems.add(
            "$",
            "",
            'a COCO file is an object with "images", "annotations" and '
            '"categories" lists (a bare results list has no image names; '
            "upload it with upload_annotations_for_folder instead).",
        )
        problems.raise_if_any()
    categories = _categories(data["categories"], problems)
    images: dict[Any, ParsedImage] = {}
    for i, raw in enumerate(data["images"]):
        where = f"images[{i}]"
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("file_name"), str)
            or not raw["file_name"].strip()
            or "id" not in raw
        ):
            problems.add(where, "file_name", 'each image needs "id" and a "file_name" string.')
            continue
        if raw["id"] in images:
            problems.add(where, "id", f"image id {raw['id']!r} is used twice.")
            continue
        images[raw["id"]] = ParsedImage(
            where=where,
            key=raw["file_name"].strip(),
            declared_size=_size(raw.get("width"), raw.get("height")),
        )

    for k, raw in enumerate(data["annotations"]):
        where = f"annotations[{k}]"
        if not isinstance(raw, dict):
            problems.add(where, "", "must be an object.")
            continue
        image = images.get(raw.get("image_id"))
        if image is None:
            problems.add(where, "image_id", f"no image has id {raw.get('image_id')!r}.")
            continue
        category = categories.get(raw.get("category_id"))
        if category is None:
            problems.add(
                where,
                "category_id",
                f'no category has id {raw.get("category_id")!r}; add it to "categories".',
            )
            continue
        image.annotations.extend(_convert(raw, where, category, problems))
    problems.raise_if_any()
    return list(images.values())


def _categories(raw_list: list[Any], problems: Problems) -> dict[Any, tuple[str, list[Any]]]:
    categories: dict[Any, tuple[str, list[Any]]] = {}
    for c, raw in enumerate(raw_list):
        where = f"categories[{c}]"
        if not isinstance(raw, dict) or "id" not in raw:
            problems.add(where, "id", 'each category needs "id" and "name".')
            continue
        name = read_label(raw.get("name"), where, problems, "name")
        if name is not None:
            keypoints = raw.get("keypoints")
            categories[raw["id"]] = (name, keypoints if isinstance(keypoints, list) else [])
    return categories


def _convert(
    raw: dict[str, Any], where: str, category: tuple[str, list[Any]], problems: Problems
) -> list[ParsedAnnotation]:
    label, keypoint_names = category
    problems_before = len(problems.items)
    confidence = read_confidence(raw.get("score"), where, problems, "score")
    metadata: dict[str, Any] = {"coco_id": raw["id"]} if "id" in raw else {}
    if raw.get("iscrowd"):
        metadata["iscrowd"] = 1
    if isinstance(raw.get("attributes"), dict):
        metadata["attributes"] = raw["attributes"]

    def make(field: str, shape: Any, values: Any, extra: dict[str, Any]) -> ParsedAnnotation:
        return ParsedAnnotation(
            where=where,
            field=field,
            label=label,
            shape=shape,
            values=values,
            normalized=False,
            confidence=confidence,
            metadata={**metadata, **extra},
        )

    found: list[ParsedAnnotation] = []
    segmentation = raw.get("segmentation")
    rings = segmentation if isinstance(segmentation, list) and segmentation else []
    if rings:
        bbox = raw.get("bbox")
        extra = {"coco_bbox": bbox} if bbox is not None else {}
        for r, ring in enumerate(rings):
            points = polygon_points(ring, where, f"segmentation[{r}]", problems)
            if points is not None:
                found.append(make(f"segmentation[{r}]", "polygon", points, extra))
    elif raw.get("bbox") is not None:
        box = box_from_xywh(raw["bbox"], where, "bbox", problems)
        if box is not None:
            found.append(make("bbox", "box", box, {}))

    keypoints = raw.get("keypoints")
    if isinstance(keypoints, list) and keypoints:
        triples = keypoint_triples(keypoints, where, "keypoints", problems)
        if triples is not None and any(t[2] > 0 for t in triples):
            extra = {"keypoint_names": keypoint_names} if keypoint_names else {}
            found.append(make("keypoints", "keypoints", triples, extra))
    if not found and len(problems.items) == problems_before:
        problems.add(
            where, "bbox", 'needs a "bbox" [x, y, w, h], a polygon "segmentation" or "keypoints".'
        )
    return found


def _size(width: Any, height: Any) -> tuple[int, int] | None:
    """The stated image size, when both are positive whole numbers."""
    w, h = number(width), number(height)
    if w is None or h is None or w <= 0 or h <= 0 or not (w.is_integer() and h.is_integer()):
        return None
    return int(w), int(h)
