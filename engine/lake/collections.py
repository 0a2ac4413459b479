"""Collections: named sets of images or videos."""

from __future__ import annotations

from pathlib import PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.models import Collection, IngestFailure, collection_files
from engine.errors import (
    CollectionContentTypeMismatch,
    CollectionExists,
    CollectionNotFound,
    InvalidInput,
)
from engine.textformats import excerpt
from sdk.schemas import CollectionPublic, IngestFailureRecord, Page


def _mismatch(existing: Collection, content_type: str) -> CollectionContentTypeMismatch:
    return CollectionContentTypeMismatch(
        f"The collection {existing.name!r} already holds {existing.content_type}s; it cannot "
        f"take {content_type}s. Use another collection name for the {content_type}s.",
        collection_id=existing.id,
        name=existing.name,
        content_type=existing.content_type,
        requested_content_type=content_type,
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("A collection name must not be empty.")
    bad = sorted({c for c in name if c in "/\\" or ord(c) < 32})
    if bad:
        # Unique names are `<collection name>_<relative path>` and appear in URL paths, so a
        # separator or control character in the name would make them ambiguous.
        raise InvalidInput(
            f"The collection name {excerpt(name)!r} contains {bad!r}; use letters, digits, spaces, "
            "'-', '_' or '.' instead of path separators and control characters.",
            name=name,
        )
    return name


def ensure_collection(*, session: Session, name: str, content_type: str) -> Collection:
    """The collection `name`, created if new. An existing one must hold `content_type`.

    Safe under concurrency: the insert is `ON CONFLICT DO NOTHING` and the row is re-read.
    """
    name = _check_name(name)
    session.execute(
        insert(Collection)
        .values(name=name, content_type=content_type)
        .on_conflict_do_nothing(index_elements=[Collection.name])
    )
    collection = session.scalars(select(Collection).where(Collection.name == name)).one()
    if collection.content_type != content_type:
        raise _mismatch(collection, content_type)
    return collection


def create_collection(*, session: Session, name: str, content_type: str) -> CollectionPublic:
    """Create a new collection; an existing name is a 409 that says which one it is."""
    name = _check_name(name)
    existing = session.scalars(select(Collection).where(Collection.name == name)).one_or_none()
    if existing is not None:
        if existing.content_type != content_type:
            raise _mismatch(existing, content_type)
        raise CollectionExists(
            f"A collection named {name!r} already exists (id {existing.id}). Upload into it "
            "with `upload_files_to_collection`, which adds to an existing collection, or "
            "choose another name.",
            collection_id=existing.id,
            name=name,
        )
    collection = ensure_collection(session=session, name=name, content_type=content_type)
    return CollectionPublic.model_validate(collection)


def get_collection(*, session: Session, collection_id: int) -> Collection:
    collection = session.get(Collection, collection_id)
    if collection is None:
        raise CollectionNotFound(
            f"No collection has id {collection_id}; list them with GET /collections.",
            collection_id=collection_id,
        )
    return collection


def get_collection_by_name(*, session: Session, name: str) -> Collection:
    collection = session.scalar(select(Collection).where(Collection.name == name))
    if collection is None:
        raise CollectionNotFound(
            f"No collection named {excerpt(name)!r}; upload_files_to_collection creates one.",
            name=name,
        )
    return collection


def _file_counts(session: Session, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(collection_files.c.collection_id, func.count())
        .where(collection_files.c.collection_id.in_(ids))
        .group_by(collection_files.c.collection_id)
    )
    return {cid: count for cid, count in rows}


def collection_public(*, session: Session, collection: Collection) -> CollectionPublic:
    count = _file_counts(session, [collection.id]).get(collection.id, 0)
    return CollectionPublic.model_validate(collection).model_copy(update={"file_count": count})


def get_collection_details(*, session: Session, collection_id: int) -> CollectionPublic:
    """One collection with its file count (unknown id: `CollectionNotFound`)."""
    collection = get_collection(session=session, collection_id=collection_id)
    return collection_public(session=session, collection=collection)


def list_collections(
    *, session: Session, page_index: int, page_size: int
) -> Page[CollectionPublic]:
    total = session.scalar(select(func.count()).select_from(Collection)) or 0
    rows = list(
        session.scalars(
            select(Collection)
            .order_by(Collection.id)
            .offset(page_index * page_size)
            .limit(page_size)
        )
    )
    counts = _file_counts(session, [c.id for c in rows])
    items = [
        CollectionPublic.model_validate(c).model_copy(update={"file_count": counts.get(c.id, 0)})
        for c in rows
    ]
    return Page[CollectionPublic](
        items=items, total=total, page_index=page_index, page_size=page_size
    )


def list_failures(
    *, session: Session, collection_id: int, page_index: int, page_size: int, show_paths: bool
) -> Page[IngestFailureRecord]:
    """The files uploads into this collection could not register, newest first.

    `show_paths`: the path as given (on the engine's disk, or an S3 key); else its last part.
    """
    get_collection(session=session, collection_id=collection_id)
    where = IngestFailure.collection_id == collection_id
    total = session.scalar(select(func.count()).select_from(IngestFailure).where(where)) or 0
    rows = session.scalars(
        select(IngestFailure)
        .where(where)
        .order_by(IngestFailure.id.desc())
        .offset(page_index * page_size)
        .limit(page_size)
    )
    return Page[IngestFailureRecord](
        items=[_failure(r, show_paths) for r in rows],
        total=total,
        page_index=page_index,
        page_size=page_size,
    )


def _failure(row: IngestFailure, show_path: bool) -> IngestFailureRecord:
    record = IngestFailureRecord.model_validate(row)
    if show_path:
        return record
    return record.model_copy(update={"path": PurePosixPath(record.path).name or record.path})
