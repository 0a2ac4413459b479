"""Annotations of one file: add (validated), list, delete; and whole annotation sets.

An annotation set is what one operation wrote into one collection: an
`upload_annotations_for_folder` call (its `operation_unique_id`) or an import (by default
`import:<format>:<sha256 of the content>`). Writing a set replaces that operation's earlier
annotations on the collection's files, in one transaction: parse everything, match the images,
convert to pixels, and only then delete + insert, so any problem leaves the lake untouched.
Document formats live in `engine.lake.formats`; docs/annotations.md describes them for users.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from engine.db.models import Annotation, Collection, File, collection_files
from engine.errors import (
    AnnotationNotFound,
    FileNotFoundInLake,
    InvalidAnnotations,
    NoImagesMatched,
)
from engine.lake.collections import get_collection, get_collection_by_name
from engine.lake.formats import coco, label_studio, metalake_json, voc, yolo
from engine.lake.formats.geometry import parse_stored, to_geometry
from engine.lake.formats.matching import FileIndex, LakeFile
from engine.lake.formats.parsed import (
    ParsedAnnotation,
    ParsedImage,
    Problems,
    read_confidence,
    read_label,
)
from engine.textformats import TextLimits, excerpt
from sdk.schemas import (
    AnnotationCreate,
    AnnotationExportPage,
    AnnotationImportRequest,
    AnnotationUploadReport,
    ExportedAnnotation,
    ExportedImage,
)


# -- lookups ---------------------------------------------------------------------------------
def get_file(*, session: Session, unique_name: str) -> File:
    row = session.scalar(select(File).where(File.unique_name == unique_name))
    if row is None:
        raise FileNotFoundInLake(
            f"No file named {excerpt(unique_name)!r} is in the lake. Unique names are "
            "`<collection name>_<relative path with / replaced by _>`; list the collection's "
            "items to see them.",
            unique_name=unique_name,
        )
    return row


# -- one file ----------------------------------------------------------------------------------
def add_annotations(
    *, session: Session, unique_name: str, annotations: list[AnnotationCreate]
) -> list[Annotation]:
    """Validate every annotation against the file's size, then store them all (or none)."""
    file = get_file(session=session, unique_name=unique_name)
    problems = Problems("The annotation list")
    rows: list[Annotation] = []
    for i, item in enumerate(annotations):
        where = f"annotations[{i}]"
        label = read_label(item.label, where, problems)
        confidence = read_confidence(item.confidence, where, problems)
        values = parse_stored(item.shape, item.geometry, where, problems)
        if label is None or values is None:
            continue
        parsed = ParsedAnnotation(
            where=where,
            field="geometry",
            label=label,
            shape=item.shape,
            values=values,
            normalized=False,
        )
        geometry = to_geometry(
            parsed, width=file.width, height=file.height, image=file.unique_name, problems=problems
        )
        if geometry is None:
            continue
        rows.append(
            Annotation(
                file_id=file.id,
                label=label,
                shape=item.shape,
                geometry=geometry,
                confidence=confidence,
                source=item.source,
                status=item.status,
                frame_index=item.frame_index,
                metadata_=item.metadata,
            )
        )
    problems.raise_if_any()
    session.add_all(rows)
    session.flush()
    return rows


def list_annotations(
    *,
    session: Session,
    unique_name: str,
    source: str | None = None,
    model_version_id: int | None = None,
    page_index: int = 0,
    page_size: int = 1000,
) -> tuple[list[Annotation], int]:
    file = get_file(session=session, unique_name=unique_name)
    where = [Annotation.file_id == file.id]
    if source is not None:
        where.append(Annotation.source == source)
    if model_version_id is not None:
        where.append(Annotation.model_version_id == model_version_id)
    total = session.scalar(select(func.count()).select_from(Annotation).where(*where)) or 0
    rows = session.scalars(
        select(Annotation)
        .where(*where)
        .order_by(Annotation.id)
        .offset(page_index * page_size)
        .limit(page_size)
    )
    return list(rows), total


def delete_annotation(*, session: Session, unique_name: str, annotation_id: int) -> None:
    file = get_file(session=session, unique_name=unique_name)
    deleted = session.execute(
        delete(Annotation).where(Annotation.id == annotation_id, Annotation.file_id == file.id)
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise AnnotationNotFound(
            f"File {excerpt(unique_name)!r} has no annotation "
            f"{annotation_id}; list its annotations to see their ids.",
            unique_name=unique_name,
            annotation_id=annotation_id,
        )


# -- annotation sets -----------------------------------------------------------------------------
def upload_annotations(
    *,
    session: Session,
    collection_name: str,
    operation_id: str,
    data: Any,
    shape_type: metalake_json.ShapeType,
    normalized: bool,
    model_run: bool,
) -> AnnotationUploadReport:
    """`upload_annotations_for_folder`: the MetaLake JSON replaces the operation's earlier set."""
    collection = get_collection_by_name(session=session, name=collection_name)
    images = metalake_json.parse(data, shape_type=shape_type, normalized=normalized)
    return write_annotation_set(
        session=session,
        collection=collection,
        images=images,
        operation_id=operation_id,
        source="machine" if model_run else "human",
        document="The annotation file",
    )


def import_annotations(
    *,
    session: Session,
    collection_id: int,
    request: AnnotationImportRequest,
    limits: TextLimits | None = None,
) -> AnnotationUploadReport:
    """COCO JSON, a YOLO label folder, VOC XML documents or Label Studio tasks; re-importing the
    same content replaces it. `limits` bound the YOLO data_yaml."""
    collection = get_collection(session=session, collection_id=collection_id)
    document = f"The {FORMAT_NAMES[request.format]} import"
    if request.format == "label_studio":
        return _import_label_studio(
            session=session, collection=collection, request=request, document=document
        )
    if request.format == "coco":
        if request.coco is None:
            raise InvalidAnnotations(
                'format "coco" needs the COCO document in "coco".', field="coco"
            )
        content: Any = request.coco
        images = coco.parse(request.coco)
    elif request.format == "voc":
        if request.voc is None:
            raise InvalidAnnotations(
                'format "voc" needs the XML documents in "voc" (path -> text).', field="voc"
            )
        content = request.voc
        images = voc.parse(request.voc, document=document)
    else:
        if request.yolo is None:
            raise InvalidAnnotations('format "yolo" needs the label files in "yolo".', field="yolo")
        content = request.yolo.model_dump()
        names = yolo.class_names(
            names=request.yolo.names,
            data_yaml=request.yolo.data_yaml,
            classes_txt=request.yolo.classes_txt,
            limits=limits,
        )
        images = yolo.parse(request.yolo.labels, names=names)
    operation_id = request.operation_id or f"import:{request.format}:{content_digest(content)}"
    return write_annotation_set(
        session=session,
        collection=collection,
        images=images,
        operation_id=operation_id,
        source=request.annotation_type,
        document=document,
    )


FORMAT_NAMES = {"coco": "COCO", "yolo": "YOLO", "voc": "VOC", "label_studio": "Label Studio"}
PREDICTIONS_SUFFIX = ":predictions"
OPERATION_ID_LENGTH = 255  # annotations.operation_id


def _import_label_studio(
    *,
    session: Session,
    collection: Collection,
    request: AnnotationImportRequest,
    document: str,
) -> AnnotationUploadReport:
    """Human `annotations` under the operation id, machine `predictions` under
    `<operation id>:predictions`, in the same transaction; the document says which is which,
    so `annotation_type` is not used."""
    if request.label_studio is None:
        raise InvalidAnnotations(
            'format "label_studio" needs the tasks list in "label_studio".', field="label_studio"
        )
    tasks = label_studio.parse(request.label_studio, document=document)
    operation_id = (
        request.operation_id or f"import:label_studio:{content_digest(request.label_studio)}"
    )
    predictions_id = operation_id + PREDICTIONS_SUFFIX
    if len(predictions_id) > OPERATION_ID_LENGTH:
        raise InvalidAnnotations(
            f"A Label Studio import's operation_id is at most "
            f"{OPERATION_ID_LENGTH - len(PREDICTIONS_SUFFIX)} characters (its predictions are "
            f"stored under <operation_id>{PREDICTIONS_SUFFIX}); choose a shorter one.",
            field="operation_id",
        )
    human = write_annotation_set(
        session=session,
        collection=collection,
        images=tasks.human,
        operation_id=operation_id,
        source="human",
        document=document,
    )
    machine = write_annotation_set(
        session=session,
        collection=collection,
        images=tasks.machine,
        operation_id=predictions_id,
        source="machine",
        document=document,
    )
    return AnnotationUploadReport(
        operation_id=operation_id,
        written=human.written + machine.written,
        replaced=human.replaced + machine.replaced,
        matched_images=human.matched_images,
        unknown_images=human.unknown_images,
        ambiguous_images=human.ambiguous_images,
    )


def content_digest(content: Any) -> str:
    """SHA-256 of the content's canonical JSON (key order and spacing do not matter)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def collection_files_of(*, session: Session, collection_id: int) -> list[LakeFile]:
    rows = session.execute(
        select(File.id, File.unique_name, File.width, File.height)
        .join(collection_files, collection_files.c.file_id == File.id)
        .where(collection_files.c.collection_id == collection_id)
    )
    return [
        LakeFile(id=r.id, unique_name=r.unique_name, width=r.width, height=r.height) for r in rows
    ]


def write_annotation_set(
    *,
    session: Session,
    collection: Collection,
    images: list[ParsedImage],
    operation_id: str,
    source: str,
    document: str,
) -> AnnotationUploadReport:
    """Match, convert and validate everything; then replace the operation's set atomically."""
    index = FileIndex(
        collection.name, collection_files_of(session=session, collection_id=collection.id)
    )
    problems = Problems(document)
    unknown: list[str] = []
    ambiguous: list[str] = []
    matched: set[int] = set()
    rows: list[dict[str, Any]] = []
    for image in images:
        outcome, file = index.match(image)
        if file is None:
            (ambiguous if outcome == "ambiguous" else unknown).append(image.key)
            continue
        matched.add(file.id)
        rows.extend(
            annotation_rows(
                image, file, source=source, operation_id=operation_id, problems=problems
            )
        )
    problems.raise_if_any()
    if images and not matched:
        raise NoImagesMatched(
            f"None of the {len(images)} images matched a file of collection "
            f"{collection.name!r}; nothing was written. An image path `a/b.jpg` names the file "
            f"`{collection.name}_a_b.jpg`: check that the images were uploaded to this "
            f"collection and that the paths are relative to the uploaded folder.",
            unknown_images=unknown[:50],
            ambiguous_images=ambiguous[:50],
        )

    # Serialise writers of the same set, so two concurrent uploads cannot both insert.
    session.execute(
        select(
            func.pg_advisory_xact_lock(
                func.hashtextextended(f"annotations:{collection.id}:{operation_id}", 0)
            )
        )
    )
    member = select(collection_files.c.file_id).where(
        collection_files.c.collection_id == collection.id
    )
    replaced = session.execute(
        delete(Annotation).where(
            Annotation.operation_id == operation_id, Annotation.file_id.in_(member)
        )
    )
    if rows:
        session.execute(insert(Annotation), rows)
    return AnnotationUploadReport(
        operation_id=operation_id,
        written=len(rows),
        replaced=replaced.rowcount,  # type: ignore[attr-defined]
        matched_images=len(matched),
        unknown_images=unknown,
        ambiguous_images=ambiguous,
    )


def annotation_rows(
    image: ParsedImage,
    file: LakeFile | File,
    *,
    source: str,
    operation_id: str,
    problems: Problems,
    size_field: str = "width",
    metadata: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The rows of `image`'s annotations on the lake file it matched, in pixels, as applied
    annotations of `operation_id`; a stated size other than the file's, or a geometry that does
    not fit it, is added to `problems` instead (`metadata`, when given, replaces each
    annotation's own)."""
    if (
        image.declared_size
        and file.width
        and file.height
        and image.declared_size != (file.width, file.height)
    ):
        problems.add(
            image.where,
            size_field,
            (
                f"says {image.declared_size[0]}x{image.declared_size[1]} but "
                f"{file.unique_name!r} is {file.width}x{file.height} in the lake; fix the size "
                "in the document (annotations must be for the image as stored)."
            ),
        )
        return []
    rows: list[dict[str, Any]] = []
    for ann in image.annotations:
        geometry = to_geometry(
            ann, width=file.width, height=file.height, image=file.unique_name, problems=problems
        )
        if geometry is not None:
            rows.append(
                {
                    "file_id": file.id,
                    "label": ann.label,
                    "shape": ann.shape,
                    "geometry": geometry,
                    "confidence": ann.confidence,
                    "source": source,
                    "status": "applied",
                    "operation_id": operation_id,
                    "metadata_": ann.metadata if metadata is None else metadata,
                    "frame_index": ann.frame_index,
                }
            )
    return rows


def export_annotations(
    *,
    session: Session,
    collection_id: int,
    model_version_id: int | None = None,
    include_proposals: bool = False,
    page_index: int = 0,
    page_size: int = 100,
) -> AnnotationExportPage:
    """One page of the collection's files (by unique name) with their annotations in the
    MetaLake JSON format; `model_version_id` keeps only that model version's annotations.
    Applied annotations only, unless `include_proposals` (each carries its `status`)."""
    collection = get_collection(session=session, collection_id=collection_id)
    member = collection_files.c.collection_id == collection.id
    total = session.scalar(select(func.count()).select_from(collection_files).where(member)) or 0
    files = list(
        session.scalars(
            select(File)
            .join(collection_files, collection_files.c.file_id == File.id)
            .where(member)
            .order_by(File.unique_name)
            .offset(page_index * page_size)
            .limit(page_size)
        )
    )
    query = select(Annotation).where(Annotation.file_id.in_([f.id for f in files]))
    if model_version_id is not None:
        query = query.where(Annotation.model_version_id == model_version_id)
    if not include_proposals:
        query = query.where(Annotation.status == "applied")
    by_file: dict[int, list[ExportedAnnotation]] = {f.id: [] for f in files}
    for row in session.scalars(query.order_by(Annotation.file_id, Annotation.id)):
        by_file[row.file_id].append(
            ExportedAnnotation.model_validate(
                metalake_json.record(
                    label=row.label,
                    shape=row.shape,
                    geometry=row.geometry,
                    confidence=row.confidence,
                    source=row.source,
                    metadata=row.metadata_,
                    frame_index=row.frame_index,
                    model_version_id=row.model_version_id,
                    operation_id=row.operation_id,
                )
                | {"status": row.status}
            )
        )
    prefix = f"{collection.name}_"
    images = [
        ExportedImage(
            image=f.unique_name.removeprefix(prefix)
            if f.unique_name.startswith(prefix) and len(f.unique_name) > len(prefix)
            else f.unique_name,
            unique_name=f.unique_name,
            file_id=f.id,
            sha256=f.sha256,
            width=f.width,
            height=f.height,
            annotations=by_file[f.id],
        )
        for f in files
    ]
    return AnnotationExportPage(
        collection_id=collection.id,
        collection_name=collection.name,
        images=images,
        total=total,
        page_index=page_index,
        page_size=page_size,
    )
