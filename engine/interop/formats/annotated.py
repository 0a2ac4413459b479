"""The "annotated" export: each image drawn with its annotations, beside its detections as
JSON grouped by class, and one document per class (the batch auto-labelling layout users of
detection services know). Layout and fields: docs/predict.md, "The annotated export".

    annotated/<path without extension>_annotated.jpg   the image with its annotations drawn
    labels/<path without extension>.json                its annotations, grouped by label
    classes/<label>.json                                every image and box of one label
    images/<path>                                       the image itself (include_media)
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import UnreadableFile
from engine.interop.draw import annotated_jpeg
from engine.interop.formats.common import box_corners, has_extent, json_number, stem, write_media
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions, ExportSink

ANNOTATED_FOLDER = "annotated"
LABELS_FOLDER = "labels"
CLASSES_FOLDER = "classes"
MEDIA_FOLDER = "images"
SUFFIX = "_annotated.jpg"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AnnotatedWriter:
    """Draws every image (`needs_media`), so an image whose bytes cannot be decoded gets its
    JSON with the reason in `error` and no drawing; the export goes on."""

    needs_media = True

    def __init__(self, sink: ExportSink, options: ExportOptions) -> None:
        self.sink = sink
        self.options = options
        self.images: list[dict[str, Any]] = []
        self.classes: dict[str, list[dict[str, Any]]] = {}

    def add(self, image: ExportImage, media: bytes | None) -> None:
        if self.options.include_media:
            write_media(self.sink, MEDIA_FOLDER, image, media)
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": image.path})
        drawn = [a for a in image.annotations if a.frame_index is None]
        document: dict[str, Any] = {
            "image": image.path,
            "unique_name": image.unique_name,
            "width": image.width,
            "height": image.height,
            "drawing": f"{ANNOTATED_FOLDER}/{stem(image.path)}{SUFFIX}",
            "tags": sorted({a.label for a in drawn if a.shape == "tag"}),
            "detections": _grouped(drawn),
        }
        try:
            if image.content_type != "image":
                raise UnreadableFile(f"only images are drawn; this file is a {image.content_type}")
            if media is None:
                raise UnreadableFile("the image's bytes were not handed to the writer")
            self.sink.write(document["drawing"], annotated_jpeg(media, drawn))
        except UnreadableFile as exc:
            document["drawing"] = None
            document["error"] = exc.message
        self.sink.write(
            f"{LABELS_FOLDER}/{stem(image.path)}.json", json.dumps(document, indent=1).encode()
        )
        for ann in drawn:
            if has_extent(ann):
                self.classes.setdefault(ann.label, []).append(
                    {"image_id": image_id, **_detection(ann)}
                )

    def finish(self) -> None:
        names: set[str] = set()
        for label in sorted(self.classes):
            name = _file_name(label, names)
            ids = {a["image_id"] for a in self.classes[label]}
            document = {
                "category": label,
                "images": [i for i in self.images if i["id"] in ids],
                "annotations": self.classes[label],
            }
            self.sink.write(
                f"{CLASSES_FOLDER}/{name}.json", json.dumps(document, indent=1).encode()
            )


def _grouped(annotations: list[ExportAnnotation]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for ann in annotations:
        if has_extent(ann):
            grouped.setdefault(ann.label, []).append(_detection(ann))
    return grouped


def _detection(ann: ExportAnnotation) -> dict[str, Any]:
    x1, y1, x2, y2 = box_corners(ann)
    return {
        "bbox": [json_number(v) for v in (x1, y1, x2, y2)],
        "confidence": ann.confidence,
        "area": json_number(round((x2 - x1) * (y2 - y1), 2)),
        "shape": ann.shape,
        "geometry": ann.geometry,
        "source": ann.source,
        "status": ann.status,
        "annotation_id": ann.id,
    }


def _file_name(label: str, taken: set[str]) -> str:
    """A file name for `label`'s document: its safe characters, unique among the export's."""
    base = _UNSAFE.sub("_", label).strip("._") or "label"
    name, number = base, 1
    while name.lower() in taken:
        number += 1
        name = f"{base}_{number}"
    taken.add(name.lower())
    return name
