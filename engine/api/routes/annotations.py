"""Annotations and tags of one file; annotation sets of a collection (upload, import, export)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from engine.api.deps import ReadKey, SessionDep, SettingsDep, WriteKey
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.api.schemas import (
    AnnotationCreate,
    AnnotationExportPage,
    AnnotationImportRequest,
    AnnotationPublic,
    AnnotationSource,
    AnnotationUploadReport,
    AnnotationUploadRequest,
    Page,
    TagCreate,
    TagPublic,
)
from engine.lake import annotations as service
from engine.lake import tags as tag_service
from engine.lake.items import annotation_public
from engine.textformats import limits_of

router = APIRouter(tags=["annotations"], route_class=JSONRoute)

# Unique names, collection names and tags may hold "/" (sent as %2F, decoded before routing),
# hence the `:path` converters.

PageIndex = Annotated[int, Query(ge=0)]


# -- one file's annotations ------------------------------------------------------------------
@router.post(
    "/files/{unique_name:path}/annotations",
    response_model=list[AnnotationPublic],
    status_code=status.HTTP_201_CREATED,
)
def add_annotations(
    unique_name: str, body: list[AnnotationCreate], session: SessionDep, _: WriteKey
) -> list[AnnotationPublic]:
    """Add annotations (pixel geometry); all are checked first and none is stored if one is
    invalid (400 naming `annotations[i]` and the field)."""
    rows = service.add_annotations(session=session, unique_name=unique_name, annotations=body)
    return [annotation_public(row) for row in rows]


@router.get("/files/{unique_name:path}/annotations", response_model=Page[AnnotationPublic])
def list_annotations(
    unique_name: str,
    session: SessionDep,
    settings: SettingsDep,
    _: ReadKey,
    source: AnnotationSource | None = None,
    model_version_id: Id | None = None,
    page_index: PageIndex = 0,
    page_size: Annotated[int, Query(ge=1)] = 1000,
) -> Page[AnnotationPublic]:
    size = min(page_size, settings.max_page_size)
    rows, total = service.list_annotations(
        session=session,
        unique_name=unique_name,
        source=source,
        model_version_id=model_version_id,
        page_index=page_index,
        page_size=size,
    )
    return Page[AnnotationPublic](
        items=[annotation_public(r) for r in rows],
        total=total,
        page_index=page_index,
        page_size=size,
    )


@router.delete(
    "/files/{unique_name:path}/annotations/{annotation_id}", status_code=status.HTTP_204_NO_CONTENT
)
def delete_annotation(
    unique_name: str, annotation_id: Id, session: SessionDep, _: WriteKey
) -> None:
    service.delete_annotation(session=session, unique_name=unique_name, annotation_id=annotation_id)


# -- one file's tags ----------------------------------------------------------------------------
@router.get("/files/{unique_name:path}/tags", response_model=list[TagPublic])
def list_tags(unique_name: str, session: SessionDep, _: ReadKey) -> list[TagPublic]:
    return [
        TagPublic.model_validate(t)
        for t in tag_service.list_tags(session=session, unique_name=unique_name)
    ]


@router.post(
    "/files/{unique_name:path}/tags",
    response_model=list[TagPublic],
    status_code=status.HTTP_201_CREATED,
)
def add_tags(
    unique_name: str, body: list[TagCreate], session: SessionDep, _: WriteKey
) -> list[TagPublic]:
    """Add human tags (existing ones are kept as they are); returns all of the file's tags."""
    rows = tag_service.add_tags(
        session=session, unique_name=unique_name, names=[t.name for t in body]
    )
    return [TagPublic.model_validate(t) for t in rows]


@router.delete("/files/{unique_name:path}/tags/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_tag(
    unique_name: str,
    name: str,
    session: SessionDep,
    _: WriteKey,
    source: AnnotationSource = "human",
) -> None:
    tag_service.delete_tag(session=session, unique_name=unique_name, name=name, source=source)


# -- a collection's annotation sets ---------------------------------------------------------------
@router.post(
    "/collections/by-name/{collection_name:path}/annotations/upload",
    response_model=AnnotationUploadReport,
)
def upload_annotations(
    collection_name: str, body: AnnotationUploadRequest, session: SessionDep, _: WriteKey
) -> AnnotationUploadReport:
    """Write the MetaLake annotation JSON; replaces the earlier annotations of the same
    `operation_unique_id` on this collection's files."""
    return service.upload_annotations(
        session=session,
        collection_name=collection_name,
        operation_id=body.operation_unique_id,
        data=body.data,
        shape_type=body.annotation_shape_type,
        normalized=body.is_normalized,
        model_run=body.is_model_run,
    )


@router.post(
    "/collections/{collection_id}/annotations/import", response_model=AnnotationUploadReport
)
def import_annotations(
    collection_id: Id,
    body: AnnotationImportRequest,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> AnnotationUploadReport:
    """Import COCO JSON, YOLO labels, Pascal VOC XML or a Label Studio export; the same content
    imported again replaces itself."""
    return service.import_annotations(
        session=session, collection_id=collection_id, request=body, limits=limits_of(settings)
    )


@router.get("/collections/{collection_id}/annotations/export", response_model=AnnotationExportPage)
def export_annotations(
    collection_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    _: ReadKey,
    model_version_id: Id | None = None,
    include_proposals: bool = False,
    page_index: PageIndex = 0,
    page_size: Annotated[int, Query(ge=1)] = 100,
) -> AnnotationExportPage:
    """A page of the collection's files with their annotations in the MetaLake JSON format
    (applied ones only unless `include_proposals`)."""
    return service.export_annotations(
        session=session,
        collection_id=collection_id,
        model_version_id=model_version_id,
        include_proposals=include_proposals,
        page_index=page_index,
        page_size=min(page_size, settings.max_page_size),
    )
