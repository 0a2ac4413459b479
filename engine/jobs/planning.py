"""`plan`: snapshot the files a job selects into `job_items`, numbered into chunks.

Idempotent: a redelivered plan finds the items already there and returns the chunks that still
have pending items (enqueueing a chunk twice is harmless: chunks only take pending items).
"""

from __future__ import annotations

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session

from engine.db.analysis import Job, JobItem
from engine.db.models import File, collection_files
from engine.query import file_conditions


def pending_chunks(session: Session, job_id: int) -> list[int]:
    return list(session.scalars(select(JobItem.chunk).distinct()
                                .where(JobItem.job_id == job_id, JobItem.status == "pending")
                                .order_by(JobItem.chunk)))


def plan_job(*, session: Session, job_id: int, chunk_size: int) -> list[int]:
    """Create the job's items (once) and return the chunk numbers to run."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.cancel_requested or job.status not in ("queued", "running"):
        return []
    if job.status == "running":
        return pending_chunks(session, job_id)
    params = job.params
    conditions = file_conditions(params.get("query"), params.get("filter"))
    conditions.append(File.content_type == params["content_type"])
    if job.collection_id is not None:
        conditions.append(File.id.in_(select(collection_files.c.file_id).where(
            collection_files.c.collection_id == job.collection_id)))
    number = func.row_number().over(order_by=File.id) - 1
    selection = select(File.id, literal(job_id), number // chunk_size).where(*conditions)
    session.execute(insert(JobItem).from_select(["file_id", "job_id", "chunk"], selection))
    total = session.scalar(select(func.count()).where(JobItem.job_id == job_id)) or 0
    values: dict[str, object] = {"total": total, "status": "running",
                                 "started_at": func.now()}
    if total == 0:
        values.update(status="succeeded", finished_at=func.now())
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    return pending_chunks(session, job_id)
