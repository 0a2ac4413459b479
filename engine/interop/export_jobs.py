"""Exports too large to stream in the request (over METALAKE_EXPORT_INLINE_MAX_ITEMS files):
a job of kind `export`, run by a worker on the control queue, which writes the zip into
managed storage; `GET /exports/{job_id}/download` streams it.

The job shows progress as other jobs do (`total`, `done`); a job that fails says why in
`error`, and nothing is published until the whole archive is written.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, update
from sqlalchemy.orm import Session, sessionmaker

from engine.db.datasets import ExportResult
from engine.db.jobs import Job
from engine.db.session import session_scope
from engine.errors import EngineError, ExportNotReady, JobNotFound
from engine.interop.exports import (
    PreparedExport,
    WriterFactory,
    prepare_export,
    snapshot,
    write_export,
)
from engine.interop.sinks import ZipSink
from engine.storage import Storage, file_uri
from sdk.schemas import JobSubmitted
from sdk.schemas_exports import ExportParams, ExportRequest
from sdk.schemas_exports import ExportResult as ExportResultPublic
from sdk.vocabulary import JobKind, JobStatus, Platform

if TYPE_CHECKING:
    from engine.config import Settings

log = logging.getLogger(__name__)
NAMESPACE = "exports"


class _Cancelled(Exception):
    """The job was cancelled while it ran: stop, publish nothing."""


def archive_storage(settings: Settings) -> Storage:
    """Where export archives are written: managed storage, else the engine's home (which the
    API and the workers then must share)."""
    return Storage(
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        managed_url=settings.managed_storage_url or file_uri(settings.home),
    )


def submit_export_job(
    *,
    session: Session,
    request: ExportRequest,
    prepared: PreparedExport,
    send: Callable[[int], None],
) -> JobSubmitted:
    """Record the job, commit, and send it to a worker."""
    row = Job(
        kind=JobKind.EXPORT,
        platform=Platform.NONE,
        params=ExportParams.model_validate(request.model_dump()).model_dump(mode="json"),
        collection_id=request.collection_id,
        status=JobStatus.QUEUED,
        total=prepared.items,
    )
    session.add(row)
    session.commit()
    send(row.id)
    return JobSubmitted(job_id=row.id, status=JobStatus.QUEUED, total=prepared.items)


def _finish(
    sessions: sessionmaker[Session], job_id: int, status: JobStatus, error: str | None
) -> None:
    with session_scope(sessions) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
            .values(status=status, error=error, finished_at=func.now())
        )


def run_export_job(
    job_id: int,
    *,
    sessions: sessionmaker[Session],
    storage: Storage,
    archives: Storage,
    writer_for: WriterFactory,
) -> None:
    """The worker's side: write the archive to a temporary file, keep the job's progress,
    then store the archive and mark the job succeeded (or failed, with the reason)."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status != JobStatus.QUEUED or job.cancel_requested:
            return
        job.status = JobStatus.RUNNING
        job.started_at = func.now()  # type: ignore[assignment]
        params = ExportParams.model_validate(job.params)

    def progress(done: int, total: int) -> None:
        with session_scope(sessions) as progress_session:
            running = progress_session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status == JobStatus.RUNNING,
                    Job.cancel_requested.is_(False),
                )
                .values(done=done, total=total)
                .returning(Job.id)
            ).first()
        if running is None:
            raise _Cancelled()

    try:
        with tempfile.TemporaryDirectory(prefix="metalake-export-") as folder:
            archive = Path(folder) / "export.zip"
            with session_scope(sessions) as session:
                snapshot(session)
                prepared = prepare_export(session=session, request=params, writer_for=writer_for)
                with archive.open("wb") as handle:
                    sink = ZipSink(handle)
                    items = write_export(
                        prepared,
                        session=session,
                        storage=storage,
                        sink=sink,
                        writer_for=writer_for,
                        progress=progress,
                    )
                    sink.close()
            with archive.open("rb") as written:
                uri, _, size = archives.put_content_addressed(
                    written, namespace=NAMESPACE, suffix=".zip"
                )
        with session_scope(sessions) as session:
            session.add(
                ExportResult(
                    job_id=job_id,
                    storage_uri=uri,
                    size_bytes=size,
                    items=items,
                    annotations=prepared.annotations,
                    files=sink.files,
                )
            )
            finished = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
                .values(status=JobStatus.SUCCEEDED, done=items, finished_at=func.now())
                .returning(Job.id)
            ).first()
            if finished is None:  # cancelled while the archive was stored: publish nothing
                raise _Cancelled()
    except _Cancelled:
        log.info("export job %d was cancelled; its archive is not published", job_id)
    except EngineError as exc:
        log.warning("export job %d failed: %s", job_id, exc.message)
        _finish(sessions, job_id, JobStatus.FAILED, exc.message)
    except Exception as exc:
        log.exception("export job %d failed", job_id)
        _finish(
            sessions,
            job_id,
            JobStatus.FAILED,
            f"The export stopped on an unexpected error ({type(exc).__name__}); the worker's "
            "log has it. Send the export again.",
        )


def export_result(*, session: Session, job_id: int) -> tuple[ExportResultPublic, str]:
    """The finished export of job `job_id` and where its archive is."""
    job = session.get(Job, job_id)
    if job is None or job.kind != JobKind.EXPORT:
        raise JobNotFound(
            f"No export job has id {job_id}; POST /exports answers with the job id.",
            job_id=job_id,
        )
    row = session.get(ExportResult, job_id)
    if row is None:
        raise ExportNotReady(
            f"Export job {job_id} is {job.status}"
            + (f" ({job.error})" if job.error else "")
            + "; its archive can be downloaded once the job has succeeded (wait_for_job).",
            job_id=job_id,
            status=job.status,
        )
    params = ExportParams.model_validate(job.params)
    public = ExportResultPublic(
        job_id=job_id,
        format=params.format,
        items=row.items,
        annotations=row.annotations,
        files=row.files,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
    )
    return public, row.storage_uri


def archive_chunks(storage: Storage, uri: str) -> Iterator[bytes]:
    with storage.open(uri) as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")
