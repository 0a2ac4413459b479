"""Items (files of the lake): listing and search, details, metadata, content."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import StreamingResponse

from engine.api.deps import ReadKey, SessionDep, StorageDep, WriteKey
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.api.schemas import ContentType, ItemPublic, ItemQuery, MetadataUpdate, Page
from engine.lake import by_storage, trash
from engine.lake import items as service
from engine.lake.content import open_content
from sdk.schemas_lookup import StorageLookup, StorageMatches
from sdk.schemas_trash import TrashReport, TrashRequest

router = APIRouter(tags=["items"], route_class=JSONRoute)


def _base(request: Request) -> str:
    return str(request.base_url)


@router.get("/items", response_model=Page[ItemPublic])
def list_items(
    request: Request,
    session: SessionDep,
    key: ReadKey,
    content_type: ContentType | None = None,
    collection_id: Id | None = None,
    query: Annotated[str | None, Query(description="e.g. annotation.label=Bird")] = None,
    filter: Annotated[
        str | None, Query(description='JSON, e.g. {"annotation_types": ["human"]}')
    ] = None,
    page_index: Annotated[int, Query(ge=0)] = 0,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Page[ItemPublic]:
    search = ItemQuery(
        query=query,
        filter=service.parse_filter(filter),
        content_type=content_type,
        collection_id=collection_id,
        page_index=page_index,
        page_size=page_size,
    )
    return service.list_items(
        session=session, search=search, base_url=_base(request), show_storage=key.has("write")
    )


@router.post("/items/search", response_model=Page[ItemPublic])
def search_items(
    body: ItemQuery, request: Request, session: SessionDep, key: ReadKey
) -> Page[ItemPublic]:
    """The same as GET /items, with the query and filter in a JSON body."""
    return service.list_items(
        session=session, search=body, base_url=_base(request), show_storage=key.has("write")
    )


@router.post("/items/trash", response_model=TrashReport)
def trash_items(
    body: TrashRequest,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    _: WriteKey,
    background: BackgroundTasks,
) -> TrashReport:
    """Take the selected files out of the lake with their annotations, tags and vectors;
    managed bytes no other file shares are removed once the deletion has committed."""
    report, unused = trash.trash_files(session=session, storage=storage, request=body)
    if unused:
        background.add_task(trash.remove_stored_bytes, request.app.state.db_engine, storage, unused)
    return report


@router.post("/files/by-storage", response_model=StorageMatches)
def files_by_storage(body: StorageLookup, session: SessionDep, _: WriteKey) -> StorageMatches:
    """The unique names of the files stored at each URI (storage URIs are shown to write
    keys only, so this needs one too)."""
    return by_storage.files_at(session=session, storage_uris=body.storage_uris)


@router.get("/files/{unique_name}", response_model=ItemPublic)
def get_file(unique_name: str, request: Request, session: SessionDep, key: ReadKey) -> ItemPublic:
    """A file's details; `storage_uri` (a server path) only for write and admin keys."""
    return service.get_file_details(
        session=session,
        unique_name=unique_name,
        base_url=_base(request),
        show_storage=key.has("write"),
    )


@router.patch("/files/{unique_name}/metadata", response_model=ItemPublic)
def update_metadata(
    unique_name: str, body: MetadataUpdate, request: Request, session: SessionDep, _: WriteKey
) -> ItemPublic:
    """Merge keys into the file's metadata; a null value removes the key."""
    return service.update_file_metadata(
        session=session, unique_name=unique_name, metadata=body.metadata, base_url=_base(request)
    )


@router.get("/files/{file_id}/content", response_class=StreamingResponse)
def file_content(
    file_id: Id, session: SessionDep, storage: StorageDep, _: ReadKey
) -> StreamingResponse:
    """The file's bytes, streamed from where the lake keeps them; 409 if they are no longer
    the bytes ingested (size or SHA-256 differ, or the path was swapped for a symlink)."""
    found = service.file_content(session=session, file_id=file_id)
    return StreamingResponse(
        open_content(found, storage=storage),
        media_type=found.media_type,
        headers={
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(found.name)}",
            "Content-Length": str(found.size_bytes),
            "X-Content-Type-Options": "nosniff",
        },
    )
