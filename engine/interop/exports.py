"""Exports: a selection written in a format, into a folder or a zip (docs/exports.md).

`prepare_export` checks everything a request can get wrong (the collection, the query and
filter, the format) and counts the selection, before any byte is written; `write_export` then
walks the selection page by page, reading each image's bytes from storage only when the export
includes media or the writer draws on the pixels, and reports progress. `zip_stream` is the
same walk as the chunks of a zip archive, for an HTTP response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from engine.db.session import session_scope
from engine.interop.datasets import version_selection
from engine.interop.records import ExportOptions, ExportSink, ExportWriter
from engine.interop.selection import (
    PAGE_SIZE,
    Selected,
    Selection,
    count_annotations,
    count_files,
    iter_pages,
    select_files,
    selection_labels,
)
from engine.interop.sinks import ChunkBuffer, ZipSink
from engine.lake.content import StoredFile, open_content
from engine.storage import Storage
from sdk.schemas_exports import ExportRequest

WriterFactory = Callable[[str, ExportSink, ExportOptions], ExportWriter]
Progress = Callable[[int, int], None]


class _NoSink:
    """Takes nothing: building a writer on it checks the format and options only."""

    def write(self, path: str, data: bytes) -> None:
        raise AssertionError("a writer wrote while being checked")


@dataclass(frozen=True)
class PreparedExport:
    """A checked export: what it selects, in which format, and how many files and
    annotations that is now."""

    selection: Selection
    format: str
    options: ExportOptions
    items: int
    annotations: int


@dataclass(frozen=True)
class ExportReport:
    items: int
    annotations: int
    files: int


def check_writer(writer_for: WriterFactory, format: str, options: ExportOptions) -> None:
    """Raises the format's error (`UnknownExportFormat`, `ExportNotPossible`) if it cannot be
    written with `options`."""
    writer_for(format, _NoSink(), options)


def prepare(
    *,
    session: Session,
    selection: Selection,
    format: str,
    include_media: bool,
    include_proposals: bool,
    yolo_task: str,
    writer_for: WriterFactory,
) -> PreparedExport:
    options = ExportOptions(
        labels=selection_labels(session, selection),
        include_media=include_media,
        include_proposals=include_proposals,
        yolo_task="segment" if yolo_task == "segment" else "detect",
    )
    check_writer(writer_for, format, options)
    return PreparedExport(
        selection=selection,
        format=format,
        options=options,
        items=count_files(session, selection),
        annotations=count_annotations(session, selection),
    )


def prepare_export(
    *, session: Session, request: ExportRequest, writer_for: WriterFactory
) -> PreparedExport:
    """Check `request` and count what it selects; raises the 4xx error naming what is wrong."""
    if request.dataset_version_id is not None:
        selection = version_selection(session, request.dataset_version_id)
    else:
        selection = select_files(
            session=session,
            collection_id=request.collection_id,
            content_type=request.content_type,
            query=request.query,
            filter=request.filter,
            sources=request.sources,
            include_proposals=request.include_proposals,
        )
    return prepare(
        session=session,
        selection=selection,
        format=request.format,
        include_media=request.include_media,
        include_proposals=request.include_proposals,
        yolo_task=request.yolo_task,
        writer_for=writer_for,
    )


def read_media(storage: Storage, selected: Selected) -> bytes:
    """The image's bytes, checked against the size and SHA-256 ingest recorded."""
    image = selected.image
    stored = StoredFile(
        file_id=image.file_id,
        storage_uri=selected.storage_uri,
        sha256=image.sha256,
        size_bytes=image.size_bytes,
        media_type="application/octet-stream",
        name=image.path,
    )
    return b"".join(open_content(stored, storage=storage))


def export_steps(
    prepared: PreparedExport,
    *,
    session: Session,
    storage: Storage,
    sink: ExportSink,
    writer_for: WriterFactory,
    progress: Progress | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[int]:
    """Write the export into `sink`, yielding the number of images written after each one;
    the writer is finished after the last."""
    writer = writer_for(prepared.format, sink, prepared.options)
    wants_media = prepared.options.include_media or writer.needs_media
    done = 0
    total = prepared.items
    for page in iter_pages(session, prepared.selection, page_size=page_size):
        for selected in page:
            media = read_media(storage, selected) if wants_media else None
            writer.add(selected.image, media)
            done += 1
            yield done
        total = max(total, done)
        if progress is not None:
            progress(done, total)
    writer.finish()
    if progress is not None:
        progress(done, max(total, done))


def write_export(
    prepared: PreparedExport,
    *,
    session: Session,
    storage: Storage,
    sink: ExportSink,
    writer_for: WriterFactory,
    progress: Progress | None = None,
    page_size: int = PAGE_SIZE,
) -> int:
    """The whole export into `sink`; returns how many images were written."""
    steps = export_steps(
        prepared,
        session=session,
        storage=storage,
        sink=sink,
        writer_for=writer_for,
        progress=progress,
        page_size=page_size,
    )
    return max(steps, default=0)


def snapshot(session: Session) -> None:
    """Read the rest of the transaction from one snapshot (REPEATABLE READ), so the pages of
    an export agree with each other whatever is written meanwhile. Call before any query."""
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def zip_stream(
    prepared: PreparedExport,
    *,
    sessions: sessionmaker[Session],
    storage: Storage,
    writer_for: WriterFactory,
) -> Iterator[bytes]:
    """The export as a zip archive, chunk by chunk (a chunk per image written), read in a
    transaction of its own (the request's has ended when a response streams)."""
    buffer = ChunkBuffer()
    sink = ZipSink(buffer)
    with session_scope(sessions) as session:
        snapshot(session)
        for _ in export_steps(
            prepared, session=session, storage=storage, sink=sink, writer_for=writer_for
        ):
            chunk = buffer.drain()
            if chunk:
                yield chunk
    sink.close()
    yield buffer.drain()
