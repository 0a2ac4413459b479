"""Analysis jobs: autotag, auto-annotate, embed (section 7 of the SDK manual); show, list,
cancel, retry failed items, resume; accept or reject a preview job's proposals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from engine.api import job_wait
from engine.api.deps import KeyGiven, ReadKey, SessionDep, SettingsDep, WriteKey, in_one_transaction
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.api.schemas import (
    AutoAnnotateRequest,
    AutotagRequest,
    EmbedRequest,
    JobPublic,
    JobSubmitted,
    ProposalDecision,
    ProposalReport,
)
from engine.db.session import session_scope
from engine.jobs import service, submission
from engine.jobs.dispatch import CeleryDispatcher, Dispatcher
from sdk.schemas import FINISHED_JOB_STATUSES, MAX_JOB_WAIT
from sdk.vocabulary import JobKind, JobStatus

router = APIRouter(tags=["jobs"], route_class=JSONRoute)


def _dispatcher(request: Request) -> Dispatcher:
    """One Celery producer per app, made on first use."""
    state = request.app.state
    if getattr(state, "dispatcher", None) is None:
        from engine.jobs.celery_app import create_celery

        state.dispatcher = CeleryDispatcher(create_celery(state.settings))
    dispatcher: Dispatcher = state.dispatcher
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
ACCEPTED = status.HTTP_202_ACCEPTED


@router.post("/jobs/autotag", response_model=JobSubmitted, status_code=ACCEPTED)
def autotag(
    body: AutotagRequest,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    _: WriteKey,
) -> JobSubmitted:
    """Tag a collection (`collection_id`) or the lake's `content_type` population."""
    job = submission.validate_autotag(session, settings, body)
    return service.submit(session=session, job=job, dispatcher=dispatcher)


@router.post("/jobs/auto-annotate", response_model=JobSubmitted, status_code=ACCEPTED)
def auto_annotate(
    body: AutoAnnotateRequest,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    _: WriteKey,
) -> JobSubmitted:
    """Annotate (boxes or polygons) the prompted labels; `preview` proposes them."""
    job = submission.validate_auto_annotate(session, settings, body)
    return service.submit(session=session, job=job, dispatcher=dispatcher)


@router.post("/jobs/embed", response_model=JobSubmitted, status_code=ACCEPTED)
def embed(
    body: EmbedRequest,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    _: WriteKey,
) -> JobSubmitted:
    """Compute and store one embedding per selected file."""
    job = submission.validate_embed(session, settings, body)
    return service.submit(session=session, job=job, dispatcher=dispatcher)


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(
    session: SessionDep,
    _: ReadKey,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[JobKind | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[JobPublic]:
    """Jobs, newest first."""
    return service.list_jobs(session=session, status=status, kind=kind, limit=limit)


@router.get("/jobs/{job_id}", response_model=JobPublic)
async def get_job(
    job_id: Id,
    request: Request,
    key: KeyGiven,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_JOB_WAIT,
            description="Hold the answer up to this many seconds, until the job "
            "has finished (long polling)",
        ),
    ] = 0,
) -> JobPublic:
    """A job's status, counters and failed items with their reasons.

    With `wait`, an unfinished job is answered once it finishes (within ~0.1 s) or once `wait`
    seconds have passed, whichever comes first (engine/api/job_wait.py): `wait_for_job` sees
    the end at once without asking again and again."""

    def read(session: Session) -> JobPublic:
        return service.get_job(session=session, job_id=job_id)

    job = await run_in_threadpool(in_one_transaction, request, key, "read", read)
    if job.status in FINISHED_JOB_STATUSES or wait <= 0:
        return job
    await job_wait.hold(request, job_id, wait)

    def reread() -> JobPublic:
        with session_scope(request.app.state.session_factory) as session:
            return read(session)

    return await run_in_threadpool(reread)


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: Id, session: SessionDep, _: WriteKey) -> JobPublic:
    return service.cancel_job(session=session, job_id=job_id)


@router.post("/jobs/{job_id}/retry", response_model=JobPublic)
def retry_failed(
    job_id: Id, session: SessionDep, dispatcher: DispatcherDep, _: WriteKey
) -> JobPublic:
    """Run the failed items of a finished job again."""
    return service.retry_failed(session=session, job_id=job_id, dispatcher=dispatcher)


@router.post("/jobs/{job_id}/resume", response_model=JobPublic)
def resume_job(
    job_id: Id, session: SessionDep, dispatcher: DispatcherDep, _: WriteKey
) -> JobPublic:
    """Send again the work an unfinished job still has (its plan, or its chunks with pending
    items that no live worker holds): after the broker lost its queue. Safe to repeat."""
    return service.resume_job(session=session, job_id=job_id, dispatcher=dispatcher)


@router.post("/jobs/{job_id}/proposals/accept", response_model=ProposalReport)
def accept_proposals(
    job_id: Id, body: ProposalDecision, session: SessionDep, _: WriteKey
) -> ProposalReport:
    return service.decide_proposals(
        session=session, job_id=job_id, accept=True, unique_names=body.unique_names
    )


@router.post("/jobs/{job_id}/proposals/reject", response_model=ProposalReport)
def reject_proposals(
    job_id: Id, body: ProposalDecision, session: SessionDep, _: WriteKey
) -> ProposalReport:
    return service.decide_proposals(
        session=session, job_id=job_id, accept=False, unique_names=body.unique_names
    )
