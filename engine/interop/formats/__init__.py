"""Export writers, one module per format; each writes `ExportImage`s into an `ExportSink`
(`engine.interop.records`). `writer_for` picks one by the format's name."""

from __future__ import annotations

from collections.abc import Callable

from engine.errors import UnknownExportFormat
from engine.interop.formats.annotated import AnnotatedWriter
from engine.interop.formats.coco import CocoWriter
from engine.interop.formats.label_studio import LabelStudioWriter
from engine.interop.formats.metalake_json import MetalakeJsonWriter
from engine.interop.formats.voc import VocWriter
from engine.interop.formats.yolo import YoloWriter
from engine.interop.records import ExportOptions, ExportSink, ExportWriter

WRITERS: dict[str, Callable[[ExportSink, ExportOptions], ExportWriter]] = {
    "metalake_json": MetalakeJsonWriter,
    "coco": CocoWriter,
    "yolo": YoloWriter,
    "voc": VocWriter,
    "label_studio": LabelStudioWriter,
    "annotated": AnnotatedWriter,
}
ALIASES = {"metalake": "metalake_json"}
IMAGE_ONLY = frozenset({"coco", "yolo", "voc", "label_studio"})  # refuse videos (frames)


def writer_for(format: str, sink: ExportSink, options: ExportOptions) -> ExportWriter:
    """The writer of `format` (a key of `WRITERS`, or of `ALIASES`) over `sink`."""
    writer = WRITERS.get(ALIASES.get(format, format))
    if writer is None:
        raise UnknownExportFormat(
            f"Unknown export format {format!r}; choose one of {', '.join(sorted(WRITERS))}.",
            format=format,
            accepted=sorted(WRITERS),
        )
    return writer(sink, options)
