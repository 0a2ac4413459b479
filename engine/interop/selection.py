"""Which files and annotations an export writes, and reading them page by page as
`ExportImage`s: files in id order (keyset pages, so memory stays bounded), their annotations
and tags in one query each per page.

A selection is a collection or the whole lake's images or videos, narrowed by the query
language and filter (the conditions `get_item_list_from_collection` uses), plus which
annotations count: their sources, proposals or not, and optionally only some labels. A dataset
version selects its snapshot of file and annotation ids instead (`engine.interop.datasets`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from engine.db.datasets import DatasetVersionAnnotation, DatasetVersionItem
from engine.db.models import Annotation, Collection, File, Tag, collection_files
from engine.errors import InvalidInput
from engine.interop.records import ExportAnnotation, ExportImage, Split
from engine.lake.collections import get_collection
from engine.lake.items import display_name
from engine.query import file_conditions

PAGE_SIZE = 200


@dataclass(frozen=True)
class Selection:
    """A validated selection; `conditions` on `File`, `annotation_conditions` on `Annotation`."""

    conditions: tuple[ColumnElement[bool], ...]
    annotation_conditions: tuple[ColumnElement[bool], ...]
    tag_sources: tuple[str, ...]
    collection_name: str | None = None
    # A dataset version's selection: its files carry their split.
    version_id: int | None = None


def select_files(
    *,
    session: Session,
    collection_id: int | None,
    content_type: str | None,
    query: str | None,
    filter: Mapping[str, Any] | None,
    sources: Sequence[str] = ("human", "machine"),
    include_proposals: bool = False,
    labels: Sequence[str] = (),
) -> Selection:
    """Check and compile a selection: the collection exists, the query parses (else the
    query error with its position), the filter is valid."""
    conditions = list(file_conditions(query, filter))
    collection_name = None
    if collection_id is not None:
        collection: Collection = get_collection(session=session, collection_id=collection_id)
        collection_name = collection.name
        conditions.append(
            File.id.in_(
                select(collection_files.c.file_id).where(
                    collection_files.c.collection_id == collection_id
                )
            )
        )
    elif content_type is not None:
        conditions.append(File.content_type == content_type)
    else:
        raise InvalidInput("Name a collection (collection_id) or a content_type (image or video).")
    unknown = [s for s in sources if s not in ("human", "machine")]
    if unknown or not sources:
        raise InvalidInput(
            f"sources must be human and/or machine, not {list(sources)!r}.", field="sources"
        )
    annotation_conditions: list[ColumnElement[bool]] = [Annotation.source.in_(list(sources))]
    if not include_proposals:
        annotation_conditions.append(Annotation.status == "applied")
    if labels:
        annotation_conditions.append(Annotation.label.in_(list(labels)))
    return Selection(
        conditions=tuple(conditions),
        annotation_conditions=tuple(annotation_conditions),
        tag_sources=tuple(sources),
        collection_name=collection_name,
    )


def count_files(session: Session, selection: Selection) -> int:
    return int(
        session.scalar(select(func.count()).select_from(File).where(*selection.conditions)) or 0
    )


def _selected_ids(selection: Selection) -> Select[int]:
    return select(File.id).where(*selection.conditions)


def _annotations_of(
    selection: Selection,
) -> tuple[type[Annotation] | type[DatasetVersionAnnotation], list[ColumnElement[bool]]]:
    """Where the selection's annotations are (the lake's, or a version's frozen copies) and
    which of them it takes."""
    if selection.version_id is not None:
        return DatasetVersionAnnotation, [
            DatasetVersionAnnotation.version_id == selection.version_id
        ]
    return Annotation, list(selection.annotation_conditions)


def selection_labels(session: Session, selection: Selection) -> tuple[str, ...]:
    """Every label the selection's annotations use, distinct, in code-point order (class ids
    follow this order)."""
    table, where = _annotations_of(selection)
    label = table.label.collate("C")
    rows = session.scalars(
        select(label)
        .distinct()
        .where(table.file_id.in_(_selected_ids(selection)), *where)
        .order_by(label)
    )
    return tuple(rows)


def count_annotations(session: Session, selection: Selection) -> int:
    table, where = _annotations_of(selection)
    return int(
        session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.file_id.in_(_selected_ids(selection)), *where)
        )
        or 0
    )


def _path(unique_name: str, collection: str | None) -> str:
    """The file's name in the export: its name inside the exported collection, else (a lake
    export, where names from two collections may coincide) its unique name."""
    if collection is None:
        return unique_name
    return display_name(unique_name, [collection])


def _annotation(row: Annotation | DatasetVersionAnnotation) -> ExportAnnotation:
    return ExportAnnotation(
        id=row.id if isinstance(row, Annotation) else row.annotation_id,
        label=row.label,
        shape=row.shape,
        geometry=row.geometry,
        confidence=row.confidence,
        source=row.source,
        status=row.status,
        frame_index=row.frame_index,
        metadata=row.metadata_,
        model_version_id=row.model_version_id,
        operation_id=row.operation_id,
        job_id=row.job_id,
    )


@dataclass(frozen=True)
class Selected:
    """One selected file: its record for the writers, and where its bytes are."""

    image: ExportImage
    storage_uri: str


def iter_pages(
    session: Session, selection: Selection, *, page_size: int = PAGE_SIZE
) -> Iterator[list[Selected]]:
    """The selection's files as `ExportImage`s, `page_size` at a time, in id order. Three
    queries per page: files (keyset on id), annotations, tags."""
    last_id = 0
    while True:
        files = list(
            session.scalars(
                select(File)
                .where(*selection.conditions, File.id > last_id)
                .order_by(File.id)
                .limit(page_size)
            )
        )
        if not files:
            return
        last_id = files[-1].id
        ids = [f.id for f in files]
        annotations: dict[int, list[ExportAnnotation]] = defaultdict(list)
        rows: Iterable[Annotation | DatasetVersionAnnotation]
        if selection.version_id is None:
            rows = session.scalars(
                select(Annotation)
                .where(Annotation.file_id.in_(ids), *selection.annotation_conditions)
                .order_by(Annotation.file_id, Annotation.frame_index.nulls_first(), Annotation.id)
            )
        else:
            copy = DatasetVersionAnnotation
            rows = session.scalars(
                select(copy)
                .where(copy.version_id == selection.version_id, copy.file_id.in_(ids))
                .order_by(copy.file_id, copy.frame_index.nulls_first(), copy.annotation_id)
            )
        for row in rows:
            annotations[row.file_id].append(_annotation(row))
        splits: dict[int, Split] = {}
        if selection.version_id is not None:
            splits = {
                file_id: cast(Split, split)
                for file_id, split in session.execute(
                    select(DatasetVersionItem.file_id, DatasetVersionItem.split).where(
                        DatasetVersionItem.version_id == selection.version_id,
                        DatasetVersionItem.file_id.in_(ids),
                    )
                )
            }
        tags: dict[int, list[str]] = defaultdict(list)
        for file_id, name in session.execute(
            select(Tag.file_id, Tag.name)
            .distinct()
            .where(Tag.file_id.in_(ids), Tag.source.in_(selection.tag_sources))
            .order_by(Tag.file_id, Tag.name)
        ):
            tags[file_id].append(name)
        yield [
            Selected(
                ExportImage(
                    file_id=f.id,
                    unique_name=f.unique_name,
                    path=_path(f.unique_name, selection.collection_name),
                    width=f.width,
                    height=f.height,
                    sha256=f.sha256,
                    size_bytes=f.size_bytes,
                    content_type=f.content_type,
                    metadata=f.metadata_,
                    tags=tuple(tags.get(f.id, ())),
                    annotations=tuple(annotations.get(f.id, ())),
                    split=splits.get(f.id),
                ),
                f.storage_uri,
            )
            for f in files
        ]
        session.expunge_all()  # the page's rows are copied out: keep the session's memory flat
