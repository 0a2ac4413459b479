"""Ultralytics YOLO dataset: `images/<split>/`, `labels/<split>/<stem>.txt` (normalised to
0..1) and `data.yaml`. Layout, mapping and what is lost: docs/export-formats.md.

`yolo_task="detect"` writes boxes (a polygon as the box around it), `"segment"` polygons (a box
as its 4 corners). An unsplit export is the `train` split, and `val` names it too, since
Ultralytics needs both. Scores, tags and keypoints are not written.
"""

from __future__ import annotations

from typing import Any

import yaml

from engine.interop.formats.common import (
    UNSPLIT,
    StemClaims,
    box_corners,
    image_size,
    label_id,
    label_ids,
    polygon_of,
    require_image,
    stem,
    write_media,
)
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions, ExportSink

SPLIT_KEYS = {"train": "train", "validation": "val", "test": "test"}


class YoloWriter:
    needs_media = False

    def __init__(self, sink: ExportSink, options: ExportOptions) -> None:
        self.sink = sink
        self.options = options
        self.class_ids = label_ids(options.labels, start=0)
        self.splits: set[str] = set()
        self.unsplit = False
        self.claims = StemClaims()

    def add(self, image: ExportImage, media: bytes | None) -> None:
        require_image(image, "yolo")
        split = image.split or UNSPLIT
        label_path = f"labels/{split}/{stem(image.path)}.txt"
        self.claims.claim(label_path, image)
        self.splits.add(split)
        self.unsplit |= image.split is None
        if self.options.include_media:
            write_media(self.sink, f"images/{split}", image, media)
        regions = [a for a in image.annotations if a.shape in ("box", "polygon")]
        lines: list[str] = []
        if regions:
            width, height = image_size(image, media)
            lines = [self._line(image, ann, width, height) for ann in regions]
        text = "".join(f"{line}\n" for line in lines)
        self.sink.write(label_path, text.encode())

    def _line(self, image: ExportImage, ann: ExportAnnotation, width: int, height: int) -> str:
        cls = label_id(self.class_ids, ann, image)
        if self.options.yolo_task == "segment":
            values = [v for x, y in polygon_of(ann) for v in (x / width, y / height)]
        else:
            x1, y1, x2, y2 = box_corners(ann)
            values = [
                (x1 + x2) / 2 / width,
                (y1 + y2) / 2 / height,
                (x2 - x1) / width,
                (y2 - y1) / height,
            ]
        return " ".join([str(cls), *(f"{min(max(v, 0.0), 1.0):.6f}" for v in values)])

    def finish(self) -> None:
        data: dict[str, Any] = {}
        for split, key in SPLIT_KEYS.items():
            if split in self.splits:
                data[key] = f"images/{split}"
        if "train" not in data:  # Ultralytics needs a train set; point it at what there is
            data["train"] = data.get("val") or data.get("test") or f"images/{UNSPLIT}"
        if "val" not in data:
            data["val"] = data["train"]
        data["names"] = {i: label for label, i in self.class_ids.items()}
        note = (
            "# MetaLake export. No `path:` key: readers take this file's folder as the root.\n"
            + (
                "# The export is unsplit: every image is in train, and val names the same set.\n"
                if self.unsplit and "validation" not in self.splits
                else ""
            )
        )
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        self.sink.write("data.yaml", (note + body).encode())
