"""The MetaLake annotation JSON (`annotations.json`, media under `images/`): what
`upload_annotations_for_folder` reads back (`engine.lake.formats.metalake_json`), so an export
uploaded into a collection of the same files gives the same annotations. Statuses, sources,
model versions and splits are kept as extra keys the reader ignores.
"""

from __future__ import annotations

from typing import Any

from engine.interop.formats.common import compact, json_list, write_media
from engine.interop.records import ExportImage, ExportOptions, ExportSink
from engine.lake.formats.metalake_json import record

DOCUMENT = "annotations.json"


class MetalakeJsonWriter:
    needs_media = False

    def __init__(self, sink: ExportSink, options: ExportOptions) -> None:
        self.sink = sink
        self.options = options
        self.images: list[str] = []

    def add(self, image: ExportImage, media: bytes | None) -> None:
        if self.options.include_media:
            write_media(self.sink, "images", image, media)
        annotations = []
        for ann in image.annotations:
            entry = record(
                label=ann.label,
                shape=ann.shape,
                geometry=ann.geometry,
                confidence=ann.confidence,
                source=ann.source,
                metadata=ann.metadata,
                frame_index=ann.frame_index,
                model_version_id=ann.model_version_id,
                operation_id=ann.operation_id,
            )
            entry["status"] = ann.status
            annotations.append(entry)
        entry_image: dict[str, Any] = {
            "image": image.path,
            "unique_name": image.unique_name,
            "file_id": image.file_id,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
        }
        if image.split is not None:
            entry_image["split"] = image.split
        if image.tags:
            entry_image["tags"] = list(image.tags)
        entry_image["annotations"] = annotations
        self.images.append(compact(entry_image))

    def finish(self) -> None:
        self.sink.write(DOCUMENT, f'{{"images": {json_list(self.images)}}}\n'.encode())
