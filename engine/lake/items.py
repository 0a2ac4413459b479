"""Items: files of the lake as the API shows them, with tags, annotations and a content URL.

A page costs three queries whatever its size: the files (with their collection names from a
correlated subquery), their tags, their annotations.
"""

from __future__ import annotations

import mimetypes
from collections import defaultdict
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import ColumnElement, String, Text, cast, exists, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import InstrumentedAttribute, Session

from engine.db.models import Annotation, Collection, File, Tag, collection_files
from engine.errors import (
    DocumentTooLarge,
    FileNotFoundInLake,
    InvalidDocument,
    InvalidFilter,
    InvalidInput,
)
from engine.lake.collections import get_collection
from engine.lake.content import StoredFile
from engine.query import file_conditions
from engine.textformats import excerpt, load_json
from sdk.schemas import AnnotationPublic, ItemPublic, ItemQuery, Page, TagPublic

CONTENT_PATH = "/api/v1/files/{id}/content"


def content_url(base_url: str, file_id: int) -> str:
    return base_url.rstrip("/") + CONTENT_PATH.format(id=file_id)


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """The `filter` query parameter: a JSON object, e.g. `{"annotation_types": ["human"]}`."""
    if not text:
        return None
    try:
        value = load_json(text, what="The filter")
    except DocumentTooLarge:
        raise
    except InvalidDocument as exc:
        raise InvalidFilter(
            f"{exc.message} Send an object such as "
            '{"annotation_types": ["human"], "from_date": "2024-01-01"}.'
        ) from exc
    if not isinstance(value, dict):
        raise InvalidFilter(
            'The filter must be a JSON object, such as {"annotation_types": ["human"]}.'
        )
    return value


def item_conditions(*, session: Session, search: ItemQuery) -> list[ColumnElement[bool]]:
    conditions = list(file_conditions(search.query, search.filter))
    if search.content_type:
        conditions.append(File.content_type == search.content_type)
    if search.collection_id is not None:
        get_collection(session=session, collection_id=search.collection_id)
        conditions.append(
            exists().where(
                collection_files.c.file_id == File.id,
                collection_files.c.collection_id == search.collection_id,
            )
        )
    return conditions


def _collection_names() -> ColumnElement[list[str]]:
    names = (
        select(Collection.name)
        .join(collection_files, collection_files.c.collection_id == Collection.id)
        .where(collection_files.c.file_id == File.id)
        .order_by(Collection.id)
        .scalar_subquery()
    )
    return func.array(names, type_=ARRAY(String))


def display_name(unique_name: str, collections: Sequence[str]) -> str:
    """The file's name inside its collection: the unique name without `<collection>_`."""
    for collection in collections:
        if unique_name.startswith(collection + "_"):
            return unique_name[len(collection) + 1 :]
    return unique_name


def tag_public(tag: Tag) -> TagPublic:
    return TagPublic.model_validate(
        {
            "name": tag.name,
            "source": tag.source,
            "confidence": tag.confidence,
            "model_version_id": tag.model_version_id,
        }
    )


def annotation_public(row: Annotation) -> AnnotationPublic:
    return AnnotationPublic.model_validate(
        {
            "id": row.id,
            "label": row.label,
            "shape": row.shape,
            "geometry": row.geometry,
            "confidence": row.confidence,
            "source": row.source,
            "status": row.status,
            "frame_index": row.frame_index,
            "operation_id": row.operation_id,
            "model_version_id": row.model_version_id,
            "job_id": row.job_id,
            "metadata": row.metadata_,
        }
    )


def _items(
    session: Session, rows: Sequence[tuple[File, list[str]]], base_url: str, show_storage: bool
) -> list[ItemPublic]:
    """`show_storage`: include `storage_uri` (a path on the engine's disk or a bucket's key),
    for write and admin keys only; read keys get the bytes through `url`."""
    ids = [f.id for f, _ in rows]
    tags: dict[int, list[TagPublic]] = defaultdict(list)
    annotations: dict[int, list[AnnotationPublic]] = defaultdict(list)
    if ids:
        for tag in session.scalars(
            select(Tag).where(Tag.file_id.in_(ids)).order_by(Tag.file_id, Tag.name, Tag.id)
        ):
            tags[tag.file_id].append(tag_public(tag))
        for ann in session.scalars(
            select(Annotation)
            .where(Annotation.file_id.in_(ids))
            .order_by(Annotation.file_id, Annotation.frame_index.nulls_first(), Annotation.id)
        ):
            annotations[ann.file_id].append(annotation_public(ann))
    return [
        ItemPublic.model_validate(
            {
                "id": f.id,
                "name": display_name(f.unique_name, names),
                "unique_name": f.unique_name,
                "url": content_url(base_url, f.id),
                "content_type": f.content_type,
                "sha256": f.sha256,
                "storage_uri": f.storage_uri if show_storage else None,
                "size_bytes": f.size_bytes,
                "width": f.width,
                "height": f.height,
                "fps": f.fps,
                "frame_count": f.frame_count,
                "uploaded_at": f.uploaded_at,
                "metadata": f.metadata_,
                "collections": list(names),
                "tags": tags.get(f.id, []),
                "annotations": annotations.get(f.id, []),
            }
        )
        for f, names in rows
    ]


SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "date_created": File.uploaded_at,
    "date_modified": File.uploaded_at,  # a file's bytes never change once registered
    "name": File.unique_name,
    "size": File.size_bytes,
}


def _order(search: ItemQuery) -> list[Any]:
    """The ORDER BY of a search: the sort column, then id so pages never overlap."""
    descending = search.sort_order == "DESC"
    if search.sort_by is None:
        return [File.id.desc() if descending else File.id]
    column = SORT_COLUMNS[search.sort_by]
    return [column.desc(), File.id.desc()] if descending else [column, File.id]


def list_items(
    *, session: Session, search: ItemQuery, base_url: str, show_storage: bool
) -> Page[ItemPublic]:
    """One page of the files `search` selects, in id order unless `search.sort_by` names
    another, with the total count."""
    conditions = item_conditions(session=session, search=search)
    total = session.scalar(select(func.count()).select_from(File).where(*conditions)) or 0
    rows = session.execute(
        select(File, _collection_names())
        .where(*conditions)
        .order_by(*_order(search))
        .offset(search.page_index * search.page_size)
        .limit(search.page_size)
    ).all()
    return Page[ItemPublic](
        items=_items(session, rows, base_url, show_storage),
        total=total,
        page_index=search.page_index,
        page_size=search.page_size,
    )


def _file_row(session: Session, where: ColumnElement[bool], what: str) -> tuple[File, list[str]]:
    row = session.execute(
        select(File, _collection_names()).where(where).execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise FileNotFoundInLake(
            f"No file {what} is in the lake. Unique names look like "
            "'<collection>_<relative path with / as _>'; list files with "
            "get_item_list_from_collection.",
        )
    return row


def get_file_details(
    *, session: Session, unique_name: str, base_url: str, show_storage: bool
) -> ItemPublic:
    row = _file_row(
        session, File.unique_name == unique_name, f"has the unique name {excerpt(unique_name)!r}"
    )
    return _items(session, [row], base_url, show_storage)[0]


def update_file_metadata(
    *, session: Session, unique_name: str, metadata: dict[str, Any], base_url: str
) -> ItemPublic:
    """Merge `metadata` into the file's metadata; a `None` value removes that key."""
    if any(not key for key in metadata):
        raise InvalidInput("Metadata keys must be non-empty strings.")
    to_set = {k: v for k, v in metadata.items() if v is not None}
    to_drop = [k for k, v in metadata.items() if v is None]
    merged: ColumnElement[Any] = File.metadata_.op("||")(cast(to_set, JSONB))
    if to_drop:
        merged = merged.op("-")(cast(to_drop, ARRAY(Text)))
    updated = session.execute(
        update(File)
        .where(File.unique_name == unique_name)
        .values(metadata_=merged)
        .returning(File.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if updated is None:
        _file_row(
            session,
            File.unique_name == unique_name,
            f"has the unique name {excerpt(unique_name)!r}",
        )  # raises FileNotFoundInLake
    return get_file_details(
        session=session, unique_name=unique_name, base_url=base_url, show_storage=True
    )  # a write key's call


def file_content(*, session: Session, file_id: int) -> StoredFile:
    """Where the file `file_id` is and what was ingested there, to stream its bytes."""
    file, names = _file_row(session, File.id == file_id, f"has id {file_id}")
    media_type = mimetypes.guess_type(PurePosixPath(urlparse(file.storage_uri).path).name)[0]
    return StoredFile(
        file_id=file.id,
        storage_uri=file.storage_uri,
        sha256=file.sha256,
        size_bytes=file.size_bytes,
        media_type=media_type or "application/octet-stream",
        name=display_name(file.unique_name, names),
    )
