"""`plan`: snapshot the files a job selects into `job_items`, numbered into chunks.

Idempotent: a redelivered plan finds the items already there and returns the chunks that still
have pending items (enqueueing a chunk twice is harmless: chunks only take pending items).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, insert, literal, select, update
from sqlalchemy.orm import Session

from engine.db.jobs import Job, JobItem
from engine.db.models import File, collection_files
from engine.query import file_conditions
from sdk.schemas import PARAMS_BY_KIND, SelectionParams
from sdk.vocabulary import ItemStatus, JobKind, JobStatus


def pending_chunks(session: Session, job_id: int) -> list[int]:
    return list(
        session.scalars(
            select(JobItem.chunk)
            .distinct()
            .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
            .order_by(JobItem.chunk)
        )
    )


def selected_files(
    query_conditions: list[ColumnElement[bool]], content_type: str, collection_id: int | None
) -> list[ColumnElement[bool]]:
    """The conditions on `File` of the files a job selects: its query's and filter's
    (`file_conditions`, compiled once by whoever has them), its content type, its collection."""
    conditions = [*query_conditions, File.content_type == content_type]
    if collection_id is not None:
        conditions.append(
            File.id.in_(
                select(collection_files.c.file_id).where(
                    collection_files.c.collection_id == collection_id
                )
            )
        )
    return conditions


def count_selected(session: Session, conditions: list[ColumnElement[bool]]) -> int:
    """How many files the `selected_files` conditions select now (planning takes the snapshot)."""
    return int(session.scalar(select(func.count()).select_from(File).where(*conditions)) or 0)


def plan_job(*, session: Session, job_id: int, chunk_size: int) -> list[int]:
    """Create the job's items (once) and return the chunk numbers to run."""
    job = session.get(Job, job_id, with_for_update=True)
    if (
        job is None
        or job.cancel_requested
        or job.status not in (JobStatus.QUEUED, JobStatus.RUNNING)
    ):
        return []
    if job.status == JobStatus.RUNNING:
        return pending_chunks(session, job_id)
    params = PARAMS_BY_KIND[JobKind(job.kind)].model_validate(job.params)
    if not isinstance(params, SelectionParams):
        raise ValueError(f"a {job.kind} job selects no files to plan")
    conditions = selected_files(
        file_conditions(params.query, params.filter), params.content_type, job.collection_id
    )
    number = func.row_number().over(order_by=File.id) - 1
    selection = select(File.id, literal(job_id), number // chunk_size).where(*conditions)
    session.execute(insert(JobItem).from_select(["file_id", "job_id", "chunk"], selection))
    total = session.scalar(select(func.count()).where(JobItem.job_id == job_id)) or 0
    values: dict[str, object] = {
        "total": total,
        "status": JobStatus.RUNNING,
        "started_at": func.now(),
    }
    if total == 0:
        values.update(status=JobStatus.SUCCEEDED, finished_at=func.now())
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    return pending_chunks(session, job_id)


def fail_job(*, session: Session, job_id: int, reason: str) -> None:
    """A job that could not be planned: failed, with `reason` (only while still queued: a
    running job's chunks are out and finish it)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.status != JobStatus.QUEUED:
        return
    job.status, job.error = JobStatus.FAILED, reason
    job.finished_at = func.now()  # type: ignore[assignment]
