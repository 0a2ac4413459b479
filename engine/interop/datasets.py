"""Datasets: named series of versions, each a frozen snapshot of a selection's files (each in
a split) and of the annotations they had, written once by the database in two
`INSERT .. SELECT`s (docs/exports.md, "Datasets").

The split is deterministic: the selected files are ordered by the MD5 of their unique name
(then id) and cut at the split's counts, so the same selection and split give the same files
in each split. Later edits of the lake do not change a version; a deleted file or annotation
leaves it. A version is exported like a collection (`ExportRequest.dataset_version_id`), each
image carrying its split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from engine.db.datasets import (
    SPLITS,
    Dataset,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionItem,
)
from engine.db.models import Annotation, Collection, File
from engine.errors import DatasetExists, DatasetVersionNotFound, InvalidSplit
from engine.interop.selection import Selection, count_files, select_files
from engine.textformats import excerpt
from sdk.schemas_exports import DatasetVersionPublic, DatasetVersionRequest

MAX_LABELS = 1000
MAX_EXPORT_TYPE = 32


def split_counts(split_info: Mapping[str, float], unit: str, available: int) -> dict[str, int]:
    """How many files go to each split. Percentages (values summing to 100 with unit `auto`,
    or unit `percent`) are cut by largest remainder so they add up to all `available` files;
    counts must be whole numbers adding up to at most `available`."""
    unknown = [key for key in split_info if key not in SPLITS]
    if unknown or not split_info:
        raise InvalidSplit(
            'split_info takes the keys "train", "validation" and "test", e.g. '
            f'{{"train": 80, "validation": 10, "test": 10}}; got {sorted(split_info)!r}.',
            field="split_info",
        )
    values = {key: float(split_info.get(key, 0)) for key in SPLITS}
    if any(not math.isfinite(v) or v < 0 for v in values.values()):
        raise InvalidSplit("split_info values must be numbers >= 0.", field="split_info")
    total = sum(values.values())
    if unit == "percent" or (unit == "auto" and math.isclose(total, 100)):
        if not math.isclose(total, 100):
            raise InvalidSplit(
                f"Split percentages must add up to 100; these add up to {total:g}.",
                field="split_info",
            )
        exact = {key: available * v / 100 for key, v in values.items()}
        counts = {key: math.floor(v) for key, v in exact.items()}
        left = available - sum(counts.values())
        by_remainder = sorted(SPLITS, key=lambda k: (-(exact[k] - counts[k]), SPLITS.index(k)))
        for key in [k for k in by_remainder if values[k] > 0][:left]:
            counts[key] += 1
        return counts
    if any(not v.is_integer() for v in values.values()):
        raise InvalidSplit(
            f"split_info is read as file counts (its values add up to {total:g}, not 100), and "
            "counts must be whole numbers; give percentages adding up to 100, or whole counts.",
            field="split_info",
        )
    if total > available:
        raise InvalidSplit(
            f"split_info asks for {total:g} files but the selection holds {available}; lower "
            "the counts, widen the query, or give percentages adding up to 100.",
            field="split_info",
            selected=available,
        )
    if total == 0:
        raise InvalidSplit("split_info selects no file; give counts or percentages above 0.")
    return {key: int(v) for key, v in values.items()}


def _check_lists(labels: Sequence[str], export_types: Sequence[str]) -> None:
    if len(labels) > MAX_LABELS or any(not label or len(label) > 255 for label in labels):
        raise InvalidSplit(
            f"labels takes at most {MAX_LABELS} non-empty labels of up to 255 characters.",
            field="labels",
        )
    if any(not name or len(name) > MAX_EXPORT_TYPE for name in export_types):
        raise InvalidSplit(
            f"export_types are format names of up to {MAX_EXPORT_TYPE} characters, e.g. "
            '["coco", "yolo"].',
            field="export_types",
        )


def _snapshot(
    session: Session, version: DatasetVersion, selection: Selection, counts: Mapping[str, int]
) -> None:
    rank = (func.row_number().over(order_by=(func.md5(File.unique_name), File.id)) - 1).label(
        "rank"
    )
    ranked = select(File.id.label("file_id"), rank).where(*selection.conditions).subquery()
    train, validation = counts["train"], counts["train"] + counts["validation"]
    split = case(
        (ranked.c.rank < train, literal("train")),
        (ranked.c.rank < validation, literal("validation")),
        else_=literal("test"),
    )
    session.execute(
        insert(DatasetVersionItem).from_select(
            ["version_id", "file_id", "split"],
            select(literal(version.id), ranked.c.file_id, split).where(
                ranked.c.rank < sum(counts.values())
            ),
        )
    )
    members = select(DatasetVersionItem.file_id).where(DatasetVersionItem.version_id == version.id)
    copied = [
        "annotation_id", "file_id", "frame_index", "label", "shape", "geometry", "confidence",
        "source", "status", "operation_id", "model_version_id", "job_id", "metadata",
    ]  # fmt: skip
    session.execute(
        insert(DatasetVersionAnnotation).from_select(
            ["version_id", *copied],
            select(
                literal(version.id),
                Annotation.id,
                Annotation.file_id,
                Annotation.frame_index,
                Annotation.label,
                Annotation.shape,
                Annotation.geometry,
                Annotation.confidence,
                Annotation.source,
                Annotation.status,
                Annotation.operation_id,
                Annotation.model_version_id,
                Annotation.job_id,
                Annotation.metadata_,
            ).where(Annotation.file_id.in_(members), *selection.annotation_conditions),
        )
    )


def _public(session: Session, version: DatasetVersion, dataset: Dataset) -> DatasetVersionPublic:
    splits = {key: 0 for key in SPLITS}
    for split, count in session.execute(
        select(DatasetVersionItem.split, func.count())
        .where(DatasetVersionItem.version_id == version.id)
        .group_by(DatasetVersionItem.split)
    ):
        splits[split] = count
    return DatasetVersionPublic(
        dataset_id=dataset.id,
        dataset_name=dataset.name,
        version_id=version.id,
        version=version.version,
        items=version.items,
        annotations=version.annotations,
        splits=splits,
        labels=list(version.labels),
        export_types=list(version.export_types),
        created_at=version.created_at,
    )


def _add_version(
    session: Session, dataset: Dataset, request: DatasetVersionRequest
) -> DatasetVersionPublic:
    _check_lists(request.labels, request.export_types)
    selection = select_files(
        session=session,
        collection_id=request.collection_id,
        content_type=request.content_type,
        query=request.query,
        filter=request.filter,
        sources=request.sources,
        include_proposals=request.include_proposals,
        labels=request.labels,
    )
    counts = split_counts(request.split_info, request.split_unit, count_files(session, selection))
    # One version number at a time per dataset: the dataset's row is the lock.
    session.execute(select(Dataset.id).where(Dataset.id == dataset.id).with_for_update())
    number = (
        session.scalar(
            select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset.id)
        )
        or 0
    ) + 1
    selection_record: dict[str, Any] = request.model_dump(
        mode="json", exclude={"dataset_name", "labels", "export_types"}
    )
    version = DatasetVersion(
        dataset_id=dataset.id,
        version=number,
        selection=selection_record,
        labels=sorted(set(request.labels)),
        export_types=list(request.export_types),
        items=0,
        annotations=0,
    )
    session.add(version)
    session.flush()
    _snapshot(session, version, selection, counts)
    version.items = int(
        session.scalar(select(func.count()).where(DatasetVersionItem.version_id == version.id)) or 0
    )
    version.annotations = int(
        session.scalar(
            select(func.count()).where(DatasetVersionAnnotation.version_id == version.id)
        )
        or 0
    )
    session.flush()
    session.refresh(version)
    return _public(session, version, dataset)


def create_dataset(*, session: Session, request: DatasetVersionRequest) -> DatasetVersionPublic:
    """A new dataset named `request.dataset_name` with its version 1."""
    name = (request.dataset_name or "").strip()
    if not name:
        raise InvalidSplit("A new dataset needs a dataset_name.", field="dataset_name")
    if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
        raise DatasetExists(
            f"A dataset named {excerpt(name)!r} exists; add a version to it "
            "(update_dataset_version_from_collection) or pick another name.",
            dataset_name=name,
        )
    dataset = Dataset(name=name)
    session.add(dataset)
    session.flush()
    return _add_version(session, dataset, request)


def _version(session: Session, version_id: int) -> tuple[DatasetVersion, Dataset]:
    row = session.execute(
        select(DatasetVersion, Dataset)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(DatasetVersion.id == version_id)
    ).one_or_none()
    if row is None:
        raise DatasetVersionNotFound(
            f"No dataset version has id {version_id}; creating a dataset or a version "
            "answers with its version_id.",
            version_id=version_id,
        )
    return row[0], row[1]


def add_version(
    *, session: Session, version_id: int, request: DatasetVersionRequest
) -> DatasetVersionPublic:
    """A new version of the dataset that version `version_id` belongs to (versions are
    frozen: an update always adds one)."""
    _, dataset = _version(session, version_id)
    return _add_version(session, dataset, request)


def get_version(*, session: Session, version_id: int) -> DatasetVersionPublic:
    version, dataset = _version(session, version_id)
    return _public(session, version, dataset)


def delete_version(*, session: Session, version_id: int) -> None:
    """Delete the version (its snapshot goes with it); a dataset left with no version is
    deleted too, so its name can be used again."""
    version, dataset = _version(session, version_id)
    session.delete(version)
    session.flush()
    if not session.scalar(select(func.count()).where(DatasetVersion.dataset_id == dataset.id)):
        session.execute(delete(Dataset).where(Dataset.id == dataset.id))


def version_selection(session: Session, version_id: int) -> Selection:
    """The frozen snapshot of version `version_id` as a selection for the export writers;
    files are named inside the collection it was made from, if that still exists."""
    version, _ = _version(session, version_id)
    collection_id = version.selection.get("collection_id")
    collection_name = (
        session.scalar(select(Collection.name).where(Collection.id == collection_id))
        if isinstance(collection_id, int)
        else None
    )
    sources = version.selection.get("sources")
    files: ColumnElement[bool] = File.id.in_(
        select(DatasetVersionItem.file_id).where(DatasetVersionItem.version_id == version_id)
    )
    return Selection(
        conditions=(files,),
        annotation_conditions=(),
        tag_sources=tuple(str(s) for s in sources) if isinstance(sources, list) else ("human",),
        collection_name=collection_name,
        version_id=version_id,
    )
