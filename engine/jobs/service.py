"""Jobs as the API sees them: submit, show, list, cancel, retry failed items, resume (send
again work the broker lost), and accept or reject a preview job's proposed annotations.

Rows are committed before work is enqueued, so a worker never picks up a job it cannot see.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from engine.db.jobs import Job, JobItem
from engine.db.models import Annotation, File, Model, ModelVersion
from engine.errors import InvalidInput, JobNotFound, JobNotRetryable, ServiceUnavailable
from engine.jobs.dispatch import Dispatcher
from engine.jobs.planning import count_selected
from engine.jobs.recovery import resumable_chunks
from engine.jobs.submission import ValidatedJob
from sdk.schemas import (
    FINISHED_JOB_STATUSES,
    PARAMS_BY_KIND,
    ItemStatus,
    JobItemError,
    JobKind,
    JobParams,
    JobPublic,
    JobStatus,
    JobSubmitted,
    Platform,
    ProposalReport,
)

MAX_ERRORS_SHOWN = 100


def submit(*, session: Session, job: ValidatedJob, dispatcher: Dispatcher) -> JobSubmitted:
    """Create the job row, commit, enqueue its planning; returns at once. `total` is how many
    files the job selects now; planning snapshots them and sets the exact figure."""
    total = count_selected(session, job.selection)
    row = Job(
        kind=job.kind,
        platform=job.platform,
        params=job.params.model_dump(mode="json"),
        model_version_id=job.version.id,
        collection_id=job.collection_id,
        status=JobStatus.QUEUED,
        total=total,
    )
    session.add(row)
    session.commit()
    try:
        dispatcher.plan(row.id)
    except Exception as exc:  # the broker refused: the job can never start, say so
        row.status, row.error = JobStatus.FAILED, f"could not enqueue: {exc}"
        row.finished_at = func.now()  # type: ignore[assignment]
        session.commit()
        raise ServiceUnavailable(
            f"The job queue is unavailable ({exc}); retry shortly.", job_id=row.id
        ) from exc
    return JobSubmitted(job_id=row.id, status=JobStatus.QUEUED, total=total)


def _job(session: Session, job_id: int, *, lock: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=lock)
    if job is None:
        raise JobNotFound(f"No job has id {job_id}; list them with list_jobs().", job_id=job_id)
    return job


def _params(job: Job) -> JobParams | None:
    """The job's stored params as their model; None when they cannot be read as one."""
    try:
        return PARAMS_BY_KIND[JobKind(job.kind)].model_validate(job.params)
    except ValidationError:
        return None


def _public(session: Session, job: Job, *, errors: bool) -> JobPublic:
    model = None
    if job.model_version_id is not None:
        found = session.execute(
            select(Model.name, ModelVersion.version)
            .join(ModelVersion.model)
            .where(ModelVersion.id == job.model_version_id)
        ).one_or_none()
        model = f"{found.name}@{found.version}" if found else None
    failed: list[JobItemError] = []
    if errors and job.failed:
        rows = session.execute(
            select(File.unique_name, JobItem.error)
            .join(File, File.id == JobItem.file_id)
            .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.FAILED)
            .order_by(JobItem.id)
            .limit(MAX_ERRORS_SHOWN)
        )
        failed = [JobItemError(unique_name=r.unique_name, error=r.error or "") for r in rows]
    return JobPublic(
        job_id=job.id,
        kind=JobKind(job.kind),
        status=JobStatus(job.status),
        platform=Platform(job.platform),
        model=model,
        collection_id=job.collection_id,
        params=_params(job),
        total=job.total,
        done=job.done,
        failed=job.failed,
        cancel_requested=job.cancel_requested,
        error=job.error,
        errors=failed,
        warnings=list(job.warnings or []),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def get_job(*, session: Session, job_id: int) -> JobPublic:
    return _public(session, _job(session, job_id), errors=True)


def list_jobs(
    *, session: Session, status: str | None = None, kind: str | None = None, limit: int = 50
) -> list[JobPublic]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    return [_public(session, job, errors=False) for job in session.scalars(query)]


def cancel_job(*, session: Session, job_id: int) -> JobPublic:
    """Stop the job: items not yet run are cancelled (chunks not started then do nothing);
    a chunk already running finishes but its results are dropped. Finished jobs stay as they
    are."""
    job = _job(session, job_id, lock=True)
    if job.status not in FINISHED_JOB_STATUSES:
        job.cancel_requested = True
        job.status = JobStatus.CANCELLED
        job.finished_at = func.now()  # type: ignore[assignment]
        session.execute(
            update(JobItem)
            .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.PENDING)
            .values(status=ItemStatus.CANCELLED, updated_at=func.now())
        )
    session.flush()
    session.refresh(job)
    return _public(session, job, errors=True)


def retry_failed(*, session: Session, job_id: int, dispatcher: Dispatcher) -> JobPublic:
    """Run the failed items of a finished job again (only their chunks are enqueued)."""
    job = _job(session, job_id, lock=True)
    if job.status not in FINISHED_JOB_STATUSES:
        raise JobNotRetryable(
            f"Job {job_id} is {job.status}; retry its failed items once it "
            "has finished (wait_for_job) or after cancelling it.",
            job_id=job_id,
            status=job.status,
        )
    chunks = list(
        session.scalars(
            update(JobItem)
            .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.FAILED)
            .values(status=ItemStatus.PENDING, error=None, updated_at=func.now())
            .returning(JobItem.chunk)
        )
    )
    if chunks:
        job.failed = Job.failed - len(chunks)  # type: ignore[assignment]
        job.status, job.cancel_requested, job.error = JobStatus.RUNNING, False, None
        job.finished_at = None
    session.commit()
    if chunks:
        dispatcher.chunks(job.id, sorted(set(chunks)))
    session.refresh(job)
    return _public(session, job, errors=True)


def resume_job(*, session: Session, job_id: int, dispatcher: Dispatcher) -> JobPublic:
    """Send again the work an unfinished job still has: the plan of a job still queued; the
    chunks of a running job that have pending items and that no live worker holds (see
    `engine/jobs/recovery.py`). For work the broker lost, e.g. a Redis restarted without its
    data. Safe at any time: a chunk sent twice writes each item once. A finished job is
    returned as it is (`retry_failed` runs its failed items again)."""
    job = _job(session, job_id, lock=True)
    chunks: list[int] = []
    if job.status == JobStatus.RUNNING and not job.cancel_requested:
        chunks = resumable_chunks(session, job.id)
    resend_plan = job.status == JobStatus.QUEUED and not job.cancel_requested
    session.commit()
    try:
        if resend_plan and job.kind == JobKind.EXPORT:  # an export runs whole, unplanned
            dispatcher.export(job.id)
        elif resend_plan:
            dispatcher.plan(job.id)
        if chunks:
            dispatcher.chunks(job.id, chunks)
    except Exception as exc:  # the broker refused: nothing was lost, the call can be repeated
        raise ServiceUnavailable(
            f"The job queue is unavailable ({exc}); retry shortly.", job_id=job.id
        ) from exc
    session.refresh(job)
    return _public(session, job, errors=True)


def decide_proposals(
    *, session: Session, job_id: int, accept: bool, unique_names: list[str] | None = None
) -> ProposalReport:
    """Accept (status applied) or reject (deleted) the proposed annotations of a preview job,
    all of them or those of the named files."""
    job = _job(session, job_id)
    if job.kind != JobKind.AUTO_ANNOTATION:
        raise InvalidInput(
            f"Job {job_id} is a {job.kind} job; only auto_annotation jobs run "
            "with preview=True propose annotations.",
            job_id=job_id,
        )
    where = [Annotation.job_id == job.id, Annotation.status == "proposed"]
    if unique_names is not None:
        where.append(
            Annotation.file_id.in_(select(File.id).where(File.unique_name.in_(unique_names)))
        )
    if accept:
        result = session.execute(
            update(Annotation).where(*where).values(status="applied").returning(Annotation.id)
        )
    else:
        result = session.execute(delete(Annotation).where(*where).returning(Annotation.id))
    return ProposalReport(job_id=job.id, annotations=len(result.all()))
