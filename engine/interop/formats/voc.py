"""Pascal VOC: `Annotations/<stem>.xml`, `JPEGImages/` and `ImageSets/Main/<split>.txt`.
Layout, mapping and what is lost: docs/export-formats.md.

One `<object>` per box (a polygon as the box around it) with `name`, `pose`, `truncated`,
`difficult` and `bndbox`; coordinates are the lake's pixels as stored (no 1-based shift). A
machine label's confidence is an extra `<score>`, a proposal's status `<status>`. Splits are
listed in `ImageSets/Main/` (`validation` as `val`, `trainval` their union); an unsplit image
is in `train`.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, indent, tostring

from engine.interop.formats.common import (
    UNSPLIT,
    StemClaims,
    box_corners,
    image_size,
    json_number,
    require_image,
    stem,
    write_media,
)
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions, ExportSink

SET_NAMES = {"train": "train", "validation": "val", "test": "test"}


class VocWriter:
    needs_media = False

    def __init__(self, sink: ExportSink, options: ExportOptions) -> None:
        self.sink = sink
        self.options = options
        self.sets: dict[str, list[str]] = {}
        self.claims = StemClaims()

    def add(self, image: ExportImage, media: bytes | None) -> None:
        require_image(image, "voc")
        if self.options.include_media:
            write_media(self.sink, "JPEGImages", image, media)
        image_id = stem(image.path)
        self.claims.claim(f"Annotations/{image_id}.xml", image)
        self.sets.setdefault(SET_NAMES[image.split or UNSPLIT], []).append(image_id)
        objects = [a for a in image.annotations if a.shape in ("box", "polygon")]
        width, height = image_size(image, media) if objects else (image.width, image.height)
        root = Element("annotation")
        _text(root, "folder", "JPEGImages")
        _text(root, "filename", image.path.rpartition("/")[2])
        _text(SubElement(root, "source"), "database", "MetaLake")
        size = SubElement(root, "size")
        _text(size, "width", str(width or 0))
        _text(size, "height", str(height or 0))
        _text(size, "depth", "3")
        _text(root, "segmented", "0")
        for ann in objects:
            _object(root, ann)
        indent(root)
        self.sink.write(f"Annotations/{image_id}.xml", tostring(root, encoding="utf-8"))

    def finish(self) -> None:
        if "train" in self.sets or "val" in self.sets:
            self.sets["trainval"] = self.sets.get("train", []) + self.sets.get("val", [])
        for name, ids in self.sets.items():
            text = "".join(f"{image_id}\n" for image_id in ids)
            self.sink.write(f"ImageSets/Main/{name}.txt", text.encode())


def _object(root: Element, ann: ExportAnnotation) -> None:
    element = SubElement(root, "object")
    _text(element, "name", ann.label)
    _text(element, "pose", "Unspecified")
    _text(element, "truncated", "1" if ann.metadata.get("truncated") else "0")
    _text(element, "difficult", "1" if ann.metadata.get("difficult") else "0")
    if ann.confidence is not None:
        _text(element, "score", str(ann.confidence))
    if ann.status == "proposed":
        _text(element, "status", "proposed")
    box = SubElement(element, "bndbox")
    for name, value in zip(("xmin", "ymin", "xmax", "ymax"), box_corners(ann), strict=True):
        _text(box, name, str(json_number(round(value, 4))))


def _text(parent: Element, tag: str, text: str) -> None:
    SubElement(parent, tag).text = text
