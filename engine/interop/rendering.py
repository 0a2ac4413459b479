"""Lake files for the predict routes: a file found by unique name (for signed URLs) and a
file drawn with its stored annotations (`render_file`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.db.models import Annotation, File
from engine.errors import FileNotFoundInLake, InvalidInput
from engine.ids import parse_id
from engine.interop.draw import MIN_SIDE, Mark, annotated_jpeg
from engine.lake import items
from engine.lake.content import StoredFile, open_content
from engine.storage import Storage
from engine.textformats import excerpt

SOURCES = ("human", "machine")
MAX_RENDER_BYTES = 256 << 20  # an image file larger than this is not decoded to be drawn


def stored_file(*, session: Session, unique_name: str) -> StoredFile:
    """Where the file `unique_name` is and what was ingested there (404 if it is not)."""
    file_id = session.scalar(select(File.id).where(File.unique_name == unique_name))
    if file_id is None:
        raise FileNotFoundInLake(
            f"No file has the unique name {excerpt(unique_name)!r}. Unique names look like "
            "'<collection>_<relative path with / as _>'.",
            unique_name=unique_name,
        )
    return items.file_content(session=session, file_id=file_id)


def file_named(*, session: Session, item: str) -> StoredFile:
    """A file by id (digits) or unique name."""
    file_id = parse_id(item)
    if file_id is not None:
        return items.file_content(session=session, file_id=file_id)
    return stored_file(session=session, unique_name=item)


def parse_sources(text: str | None) -> tuple[str, ...]:
    """`machine,human` -> the sources to draw; empty or None: both."""
    if not text or not text.strip():
        return SOURCES
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise InvalidInput(
            f"sources must be a comma-separated list of 'human' and 'machine'; got "
            f"{', '.join(repr(s) for s in unknown)}.",
            field="sources",
        )
    return chosen


@dataclass(frozen=True)
class Rendered:
    jpeg: bytes
    annotations: int


def render_file(
    *,
    session: Session,
    storage: Storage,
    item: str,
    sources: Collection[str] = SOURCES,
    min_confidence: float = 0.0,
    include_proposed: bool = False,
    min_side: int = MIN_SIDE,
) -> Rendered:
    """The image file `item` (id or unique name) with its annotations of `sources` drawn;
    machine ones under `min_confidence` are left out, as are proposals unless asked."""
    if not 0.0 <= min_confidence <= 1.0:
        raise InvalidInput(
            f"min_confidence must be a number between 0 and 1; got {min_confidence}.",
            field="min_confidence",
        )
    found = file_named(session=session, item=item)
    content_type = session.scalar(select(File.content_type).where(File.id == found.file_id))
    if content_type != "image":
        raise InvalidInput(
            f"Only images are rendered; {found.name!r} is a {content_type}.",
            file_id=found.file_id,
        )
    if found.size_bytes > MAX_RENDER_BYTES:
        raise InvalidInput(
            f"{found.name!r} is {found.size_bytes:,} bytes; images up to {MAX_RENDER_BYTES:,} "
            "bytes are rendered.",
            file_id=found.file_id,
        )
    query = select(Annotation).where(
        Annotation.file_id == found.file_id,
        Annotation.frame_index.is_(None),
        Annotation.source.in_(list(sources)),
        or_(Annotation.confidence.is_(None), Annotation.confidence >= min_confidence),
    )
    if not include_proposed:
        query = query.where(Annotation.status == "applied")
    marks = [
        Mark(a.label, a.shape, a.geometry, a.confidence, a.source)
        for a in session.scalars(query.order_by(Annotation.id))
    ]
    data = b"".join(open_content(found, storage=storage))
    return Rendered(annotated_jpeg(data, marks, min_side=min_side), len(marks))
