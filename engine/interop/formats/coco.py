"""COCO instances JSON: `annotations.json` and `images/` (per split: `annotations/<split>.json`
and `images/<split>/`). Layout, mapping and what is lost: docs/export-formats.md.

Boxes get an empty `segmentation` (so they read back as boxes), polygons their ring; categories
follow `ExportOptions.labels` with ids from 1; a machine label's confidence is `score`, a proposal's
status `attributes.status`. Only compact rows are kept until `finish`, never media.
"""

from __future__ import annotations

import json
from typing import Any

from engine.interop.formats.common import (
    box_corners,
    compact,
    json_list,
    json_number,
    label_id,
    label_ids,
    polygon_of,
    require_image,
    write_media,
)
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions, ExportSink


class CocoWriter:
    needs_media = False

    def __init__(self, sink: ExportSink, options: ExportOptions) -> None:
        self.sink = sink
        self.options = options
        self.category_ids = label_ids(options.labels, start=1)
        self.splits: dict[str | None, tuple[list[str], list[str]]] = {}

    def add(self, image: ExportImage, media: bytes | None) -> None:
        require_image(image, "coco")
        folder = f"images/{image.split}" if image.split else "images"
        if self.options.include_media:
            write_media(self.sink, folder, image, media)
        images, annotations = self.splits.setdefault(image.split, ([], []))
        entry: dict[str, Any] = {"id": image.file_id, "file_name": image.path}
        if image.width and image.height:
            entry["width"], entry["height"] = image.width, image.height
        images.append(compact(entry))
        for ann in image.annotations:
            if ann.shape in ("box", "polygon"):
                annotations.append(compact(self._annotation(image, ann)))

    def _annotation(self, image: ExportImage, ann: ExportAnnotation) -> dict[str, Any]:
        x1, y1, x2, y2 = box_corners(ann)
        if ann.shape == "polygon":
            ring = polygon_of(ann)
            segmentation = [[json_number(v) for point in ring for v in point]]
            area = _polygon_area(ring)
        else:
            segmentation, area = [], (x2 - x1) * (y2 - y1)
        row: dict[str, Any] = {
            "id": ann.id,
            "image_id": image.file_id,
            "category_id": label_id(self.category_ids, ann, image),
            "bbox": [json_number(v) for v in (x1, y1, round(x2 - x1, 4), round(y2 - y1, 4))],
            "area": json_number(round(area, 4)),
            "segmentation": segmentation,
            "iscrowd": 0,
        }
        if ann.confidence is not None:
            row["score"] = ann.confidence
        if ann.status == "proposed":
            row["attributes"] = {"status": "proposed"}
        return row

    def finish(self) -> None:
        categories = [
            {"id": i, "name": label, "supercategory": ""} for label, i in self.category_ids.items()
        ]
        head = '{"info": {"description": "MetaLake export"}, "licenses": [], '
        tail = f'"categories": {json.dumps(categories, ensure_ascii=False)}}}\n'
        for split, (images, rows) in (self.splits or {None: ([], [])}).items():
            document = (
                f'{head}"images": {json_list(images)}, "annotations": {json_list(rows)}, {tail}'
            )
            path = f"annotations/{split}.json" if split else "annotations.json"
            self.sink.write(path, document.encode())


def _polygon_area(points: list[list[float]]) -> float:
    """The shoelace area of a simple polygon."""
    total = 0.0
    for (xa, ya), (xb, yb) in zip(points, points[1:] + points[:1], strict=True):
        total += xa * yb - xb * ya
    return abs(total) / 2
