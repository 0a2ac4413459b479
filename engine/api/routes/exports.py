"""Exports and datasets: selected by collection, query and filter, written in a format,
streamed or run as a job."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from engine.api.deps import ReadKey, SessionDep, SettingsDep, StorageDep, WriteKey
from engine.api.params import Id
from engine.api.routes.jobs import DispatcherDep
from engine.api.routing import JSONRoute
from engine.interop import datasets
from engine.interop.export_jobs import archive_chunks, export_result, submit_export_job
from engine.interop.exports import prepare_export, zip_stream
from engine.interop.formats import writer_for
from sdk.schemas import JobSubmitted
from sdk.schemas_exports import (
    DatasetVersionPublic,
    DatasetVersionRequest,
    ExportRequest,
    ExportResult,
)

router = APIRouter(tags=["exports"], route_class=JSONRoute)

ZIP_RESPONSE = {"content": {"application/zip": {}}, "description": "The export as a zip archive."}


@router.post(
    "/exports",
    response_class=Response,
    responses={
        status.HTTP_200_OK: ZIP_RESPONSE,
        status.HTTP_202_ACCEPTED: {"model": JobSubmitted, "description": "An export job."},
    },
)
def create_export(
    body: ExportRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    dispatcher: DispatcherDep,
    _: ReadKey,
) -> Response:
    """A selection in a format: the zip at once when it holds at most
    METALAKE_EXPORT_INLINE_MAX_ITEMS files (headers X-Export-Items, X-Export-Annotations),
    else 202 with an export job whose archive `GET /exports/{job_id}/download` sends."""
    prepared = prepare_export(session=session, request=body, writer_for=writer_for)
    if prepared.items <= settings.export_inline_max_items:
        return StreamingResponse(
            zip_stream(
                prepared,
                sessions=request.app.state.session_factory,
                storage=storage,
                writer_for=writer_for,
            ),
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="export-{body.format}.zip"',
                "X-Export-Items": str(prepared.items),
                "X-Export-Annotations": str(prepared.annotations),
            },
        )
    submitted = submit_export_job(
        session=session, request=body, prepared=prepared, send=dispatcher.export
    )
    return JSONResponse(submitted.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get("/exports/{job_id}", response_model=ExportResult)
def get_export(job_id: Id, session: SessionDep, _: ReadKey) -> ExportResult:
    """What a finished export job wrote (409 while it runs)."""
    return export_result(session=session, job_id=job_id)[0]


@router.get(
    "/exports/{job_id}/download",
    response_class=Response,
    responses={status.HTTP_200_OK: ZIP_RESPONSE},
)
def download_export(job_id: Id, session: SessionDep, storage: StorageDep, _: ReadKey) -> Response:
    """The archive of a finished export job."""
    result, uri = export_result(session=session, job_id=job_id)
    return StreamingResponse(
        archive_chunks(storage, uri),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="export-{result.format}-{job_id}.zip"',
            "Content-Length": str(result.size_bytes),
            "X-Export-Items": str(result.items),
            "X-Export-Annotations": str(result.annotations),
        },
    )


# -- datasets ------------------------------------------------------------------------------------
@router.post("/datasets", status_code=status.HTTP_201_CREATED, response_model=DatasetVersionPublic)
def create_dataset(
    body: DatasetVersionRequest, session: SessionDep, _: WriteKey
) -> DatasetVersionPublic:
    """A new dataset (`dataset_name`) and its version 1: the selection's files, split, and
    their annotations, frozen."""
    return datasets.create_dataset(session=session, request=body)


@router.post(
    "/dataset-versions/{version_id}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetVersionPublic,
)
def add_dataset_version(
    version_id: Id, body: DatasetVersionRequest, session: SessionDep, _: WriteKey
) -> DatasetVersionPublic:
    """A new version of the dataset that version `version_id` belongs to."""
    return datasets.add_version(session=session, version_id=version_id, request=body)


@router.get("/dataset-versions/{version_id}", response_model=DatasetVersionPublic)
def get_dataset_version(version_id: Id, session: SessionDep, _: ReadKey) -> DatasetVersionPublic:
    return datasets.get_version(session=session, version_id=version_id)


@router.delete("/dataset-versions/{version_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset_version(version_id: Id, session: SessionDep, _: WriteKey) -> None:
    """Delete the version's snapshot (and the dataset, when it was its last version)."""
    datasets.delete_version(session=session, version_id=version_id)
