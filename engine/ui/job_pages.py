"""The gallery's jobs pages: the latest jobs with live progress (the page polls
/ui/jobs/progress), one job with its failures and reasons, and its cancel and retry buttons
(write keys, with the session's CSRF token)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from engine.db.session import session_scope
from engine.errors import EngineError, InvalidInput
from engine.jobs import service
from engine.jobs.dispatch import CeleryDispatcher, Dispatcher
from engine.ui import gallery, job_rows, review
from engine.ui.pages import (
    PREFIX,
    SECURITY_HEADERS,
    error_page,
    no_session,
    page_write,
    pages_of,
    to_signin,
    visitor_of,
)
from engine.ui.sessions import Visitor
from sdk.schemas import FINISHED_JOB_STATUSES
from sdk.vocabulary import JobKind

router = APIRouter()

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a job's id")]
_IDS = re.compile(r"\d{1,18}(,\d{1,18}){0,99}")


def _dispatcher(request: Request) -> Dispatcher:
    """The app's Celery producer (the jobs routes' too), made on first use."""
    state = request.app.state
    if getattr(state, "dispatcher", None) is None:
        from engine.jobs.celery_app import create_celery

        state.dispatcher = CeleryDispatcher(create_celery(state.settings))
    dispatcher: Dispatcher = state.dispatcher
    return dispatcher


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return to_signin(request)
        rows = job_rows.latest(session=session)
    return pages_of(request).render("jobs.html", visitor=visitor, jobs=rows)


@router.get("/jobs/progress")
def jobs_progress(
    request: Request, ids: Annotated[str, Query(max_length=2000, description="1,2,3")] = ""
) -> Response:
    """Status and counts of the listed jobs, polled by the jobs pages while any runs."""
    with session_scope(request.app.state.session_factory) as session:
        if visitor_of(request, session) is None:
            return no_session()
        if not _IDS.fullmatch(ids):
            return JSONResponse(
                {"error": "ids must be up to 100 job ids separated by commas, e.g. 3,2,1"},
                status_code=400,
                headers=SECURITY_HEADERS,
            )
        found = job_rows.progress(session=session, job_ids=[int(i) for i in ids.split(",")])
    return JSONResponse(found, headers=SECURITY_HEADERS)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: JobId) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return to_signin(request)
        try:
            job = service.get_job(session=session, job_id=job_id)
        except EngineError as refused:
            return error_page(request, refused, visitor)
    return pages_of(request).render(
        "job.html", visitor=visitor, job=job, finished=job.status in FINISHED_JOB_STATUSES
    )


@router.get("/jobs/{job_id}/review", response_class=HTMLResponse)
def review_page(
    request: Request, job_id: JobId, at: Annotated[int, Query(ge=0, le=10**9)] = 0
) -> Response:
    """A preview job's proposals, one image at a time (position `at` among those left)."""
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return to_signin(request)
        try:
            job = service.get_job(session=session, job_id=job_id)
            if job.kind != JobKind.AUTO_ANNOTATION:
                raise InvalidInput(
                    f"Job {job_id} is a {job.kind} job; only auto_annotation jobs run with "
                    "preview=True propose annotations to review."
                )
            left = review.pending(session=session, job_id=job_id, position=at)
            item = (
                gallery.item(session=session, file_id=left.file_id)
                if left.file_id is not None
                else None
            )
            undoable = review.undoable(
                session=session, ui_session_id=visitor.session_id, job_id=job_id
            )
        except EngineError as refused:
            return error_page(request, refused, visitor)
    labels = sorted({shape.label for shape in item.shapes}) if item else []
    return pages_of(request).render(
        "review.html",
        visitor=visitor,
        job=job,
        left=left,
        item=item,
        labels=labels,
        undoable=undoable,
    )


@router.post("/jobs/{job_id}/review/undo")
def review_undo(
    request: Request,
    job_id: JobId,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    at: Annotated[int, Form(ge=0, le=10**9)] = 0,
) -> Response:
    """Undo this session's last decision on the job's proposals."""

    def undo(session: Session, visitor: Visitor) -> None:
        review.undo(session=session, ui_session_id=visitor.session_id, job_id=job_id)

    then = f"{PREFIX}/jobs/{job_id}/review?at={at}"
    return page_write(request, csrf_token, "undoing a decision changes annotations", undo, then)


@router.post("/jobs/{job_id}/review/accept-above")
def review_accept_above(
    request: Request,
    job_id: JobId,
    min_confidence: Annotated[float, Form(ge=0, le=1)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Accept every proposal of the job scoring at least `min_confidence`."""

    def accept(session: Session, visitor: Visitor) -> None:
        job = service.get_job(session=session, job_id=job_id)
        if job.kind != JobKind.AUTO_ANNOTATION:
            raise InvalidInput(f"Job {job_id} is a {job.kind} job; it proposes nothing.")
        review.accept_above(session=session, job_id=job_id, threshold=min_confidence)

    why = "deciding on proposals changes annotations"
    return page_write(request, csrf_token, why, accept, f"{PREFIX}/jobs/{job_id}/review")


@router.post("/jobs/{job_id}/review/{file_id}/{decision}")
def review_decision(
    request: Request,
    job_id: JobId,
    file_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    decision: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    at: Annotated[int, Form(ge=0, le=10**9)] = 0,
) -> Response:
    """`accept` (applied) or `reject` (deleted) the job's proposals on one file."""

    def decide(session: Session, visitor: Visitor) -> None:
        if decision not in ("accept", "reject"):
            raise InvalidInput(f"Proposals are accepted or rejected, not {decision!r}.")
        item = gallery.item(session=session, file_id=file_id)
        review.decide(
            session=session,
            ui_session_id=visitor.session_id,
            job_id=job_id,
            file_id=file_id,
            unique_name=item.unique_name,
            accept=decision == "accept",
        )

    # the file decided leaves the list: the next one takes its position
    then = f"{PREFIX}/jobs/{job_id}/review?at={at}"
    why = "deciding on proposals changes annotations"
    return page_write(request, csrf_token, why, decide, then)


@router.post("/jobs/{job_id}/{action}")
def job_action(
    request: Request,
    job_id: JobId,
    action: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """`cancel` or `retry` (its failed items), as the jobs API does."""

    def act(session: Session, visitor: Visitor) -> None:
        if action == "cancel":
            service.cancel_job(session=session, job_id=job_id)
        elif action == "retry":
            service.retry_failed(session=session, job_id=job_id, dispatcher=_dispatcher(request))
        else:
            raise InvalidInput(f"A job can be cancelled or retried, not {action!r}.")

    then = f"{PREFIX}/jobs/{job_id}"
    return page_write(request, csrf_token, f"{action} changes a job", act, then)
