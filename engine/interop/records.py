"""What an export hands its writers: images with their annotations, already selected, and the
place the documents go.

The export service (`engine.interop.exports`) selects files by collection, query and filter,
reads their annotations page by page and calls a writer once per image, in a stable order; the
writers (`engine.interop.formats.*`) never query the database, so each format is a pure
function of the records and can be checked by a third-party reader on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Split = Literal["train", "validation", "test"]
YoloTask = Literal["detect", "segment"]


@dataclass(frozen=True)
class ExportAnnotation:
    """One stored annotation; geometry in pixels of the original image (docs/annotations.md)."""

    id: int
    label: str
    shape: str  # box | polygon | keypoints | tag
    geometry: dict[str, Any]
    confidence: float | None
    source: str  # human | machine
    status: str  # applied | proposed
    frame_index: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    model_version_id: int | None = None
    operation_id: str | None = None
    job_id: int | None = None


@dataclass(frozen=True)
class ExportImage:
    """One file of the selection. `path` is its name inside the export (the path relative to
    its collection when known, else its unique name), always with `/` separators."""

    file_id: int
    unique_name: str
    path: str
    width: int | None
    height: int | None
    sha256: str
    size_bytes: int
    content_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    annotations: tuple[ExportAnnotation, ...] = ()
    split: Split | None = None


class ExportSink(Protocol):
    """Where the documents go: a folder, or a zip archive streamed to the client."""

    def write(self, path: str, data: bytes) -> None:
        """Write one whole file at `path` (relative, `/`-separated)."""


@dataclass(frozen=True)
class ExportOptions:
    """`labels` is every label of the selection in a stable order (class ids follow it);
    `include_media` copies the image bytes beside the documents."""

    labels: tuple[str, ...]
    include_media: bool = True
    include_proposals: bool = False
    yolo_task: YoloTask = "detect"


MediaReader = Callable[[ExportImage], bytes]


class ExportWriter(Protocol):
    """Called once per image, in order, then `finish` once. A writer that needs the pixels
    (`needs_media`) gets them even when media is not included."""

    needs_media: bool

    def add(self, image: ExportImage, media: bytes | None) -> None: ...

    def finish(self) -> None: ...
