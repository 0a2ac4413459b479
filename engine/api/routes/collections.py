"""Collections, ingest (in place) and uploads (into managed storage)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, Form, Query, Request, UploadFile, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from engine.api.deps import ReadKey, SessionDep, SettingsDep, StorageDep, WriteKey
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.api.schemas import (
    CollectionCreate,
    CollectionPublic,
    ContentType,
    IngestFailureRecord,
    IngestJobPublic,
    IngestReport,
    IngestRequest,
    Page,
    StorageInfo,
)
from engine.config import Settings
from engine.errors import InvalidInput
from engine.jobs.queues import CONTROL_QUEUE
from engine.lake import collections as service
from engine.lake.ingest_jobs import (
    INGEST_TASK,
    IngestJobNotFound,
    IngestJobs,
    ingest_or_start_job,
)
from engine.lake.ingest_jobs import Background as IngestBackground
from engine.lake.probe import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from engine.lake.statistics import analyze_if_stale, report_writes_at_commit
from engine.lake.upload import Upload, ingest_uploads
from engine.textformats import excerpt, limits_of, load_json

router = APIRouter(tags=["collections"], route_class=JSONRoute)

PageIndex = Annotated[int, Query(ge=0)]
PageSize = Annotated[int, Query(ge=1, le=1000)]


@router.post("/collections", response_model=CollectionPublic, status_code=status.HTTP_201_CREATED)
def create_collection(body: CollectionCreate, session: SessionDep, _: WriteKey) -> CollectionPublic:
    """Create an empty collection (uploading into a new name creates it too)."""
    return service.create_collection(
        session=session, name=body.name, content_type=body.content_type
    )


@router.get("/collections", response_model=Page[CollectionPublic])
def list_collections(
    session: SessionDep, _: ReadKey, page_index: PageIndex = 0, page_size: PageSize = 20
) -> Page[CollectionPublic]:
    return service.list_collections(session=session, page_index=page_index, page_size=page_size)


@router.get("/collections/{collection_id}", response_model=CollectionPublic)
def get_collection(collection_id: Id, session: SessionDep, _: ReadKey) -> CollectionPublic:
    """A collection with its file count."""
    return service.get_collection_details(session=session, collection_id=collection_id)


@router.get("/collections/{collection_id}/failures", response_model=Page[IngestFailureRecord])
def list_failures(
    collection_id: Id,
    session: SessionDep,
    key: ReadKey,
    page_index: PageIndex = 0,
    page_size: PageSize = 100,
) -> Page[IngestFailureRecord]:
    """Files that uploads into this collection could not register, with the reason (the
    full path given for write and admin keys, its file name for read keys)."""
    return service.list_failures(
        session=session,
        collection_id=collection_id,
        page_index=page_index,
        page_size=page_size,
        show_paths=key.has("write"),
    )


@router.post(
    "/collections/ingest",
    response_model=IngestReport,
    responses={
        202: {
            "model": IngestJobPublic,
            "description": "An S3 prefix over METALAKE_INGEST_MAX_LISTING "
            "objects: ingested by a background job.",
        }
    },
)
def ingest_files(
    body: IngestRequest,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    key: WriteKey,
    request: Request,
    background: BackgroundTasks,
) -> IngestReport | JSONResponse:
    """Register files in place: absolute paths the engine can read (an admin key, or a write
    key for paths under METALAKE_INGEST_ROOTS), or an s3:// prefix."""
    result = ingest_or_start_job(
        body,
        session=session,
        settings=settings,
        storage=storage,
        admin=key.has("admin"),
        background=_ingest_jobs(request),
    )
    if isinstance(result, IngestJobPublic):
        return JSONResponse(result.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    _analyze_after(request, background, result, session)
    return result


@router.get("/collections/ingest-jobs/{job_id}", response_model=IngestJobPublic)
def get_ingest_job(job_id: str, request: Request, _: WriteKey) -> IngestJobPublic:
    """A background ingest's progress, and its report once it is done."""
    jobs = _ingest_jobs(request)
    if jobs is None:
        raise IngestJobNotFound(
            f"No background ingest has id {excerpt(job_id)!r}: this engine "
            "has no broker to run them.",
            job_id=job_id,
        )
    return jobs.jobs.get(job_id)


def _background_for(settings: Settings) -> IngestBackground | None:
    """None without a broker (then a large prefix is refused, as the error says)."""
    if not settings.redis_url:
        return None
    from engine.jobs.celery_app import create_celery

    app = create_celery(settings)

    def send(job_id: str, request: dict[str, Any]) -> None:
        app.send_task(INGEST_TASK, args=[job_id, request], queue=CONTROL_QUEUE)

    return IngestBackground(jobs=IngestJobs.from_url(settings.redis_url), send=send)


def _ingest_jobs(request: Request) -> IngestBackground | None:
    """The background ingests' records and sender, made on first use."""
    state = request.app.state
    if not hasattr(state, "ingest_jobs"):
        state.ingest_jobs = _background_for(state.settings)
    jobs: IngestBackground | None = state.ingest_jobs
    return jobs


@router.post("/collections/{collection_name}/upload", response_model=IngestReport)
def upload_files(
    collection_name: str,
    content_type: Annotated[ContentType, Query()],
    files: Annotated[list[UploadFile], File(description="The files' bytes.")],
    relative_paths: Annotated[list[str], Form(description="One per file, in order.")],
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    _: WriteKey,
    request: Request,
    background: BackgroundTasks,
    metadata: Annotated[str, Form(description="A JSON object applied to every file.")] = "{}",
) -> IngestReport:
    """Copy files into managed storage and register them (needs METALAKE_MANAGED_STORAGE_URL)."""
    if len(files) != len(relative_paths):
        raise InvalidInput(
            f"Send one relative_paths field per file: got {len(files)} files "
            f"and {len(relative_paths)} relative paths."
        )
    report = ingest_uploads(
        session=session,
        settings=settings,
        storage=storage,
        collection_name=collection_name,
        content_type=content_type,
        metadata=_json_object(metadata, "metadata", settings),
        uploads=[
            Upload(relative_path=p, stream=f.file)
            for f, p in zip(files, relative_paths, strict=True)
        ],
    )
    _analyze_after(request, background, report, session)
    return report


def _analyze_after(
    request: Request, background: BackgroundTasks, report: IngestReport, session: Session
) -> None:
    """Once the response is sent (the ingest committed), bring the planner's statistics of
    `files` and `collection_files` up to date if this and earlier ingests changed enough of
    them (engine/lake/statistics.py)."""
    if report.added or report.updated:
        report_writes_at_commit(session)
        background.add_task(
            analyze_if_stale,
            request.app.state.db_engine,
            just_written=report.added + report.updated,
        )


@router.get("/storage", response_model=StorageInfo)
def storage_info(settings: SettingsDep, storage: StorageDep, _: ReadKey) -> StorageInfo:
    """How this engine takes files: `managed` = uploads are copied into its storage."""
    return StorageInfo(
        managed=storage.managed_url is not None,
        ingest_batch_size=settings.ingest_batch_size,
        image_extensions=sorted(IMAGE_EXTENSIONS),
        video_extensions=sorted(VIDEO_EXTENSIONS),
    )


def _json_object(text: str, field: str, settings: Settings) -> dict[str, Any]:
    value = load_json(text or "{}", what=f"The {field} field", limits=limits_of(settings))
    if not isinstance(value, dict):
        raise InvalidInput(f"The {field} field must be a JSON object.")
    return value
