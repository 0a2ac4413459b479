"""Background ingest of an S3 prefix holding more objects than one request may list
(METALAKE_INGEST_MAX_LISTING): POST /collections/ingest answers 202 with a job, a worker ingests
the prefix page by page (a page of that many objects, each in its own transaction) and keeps the
job's progress in Redis, where GET /collections/ingest-jobs/{id} reads it.

Redis rather than a table: the record is progress for whoever started the ingest, kept a week;
what lasts is in the lake (the files, `ingest_failures`). Ingest is idempotent, so a job that
failed halfway is re-run by sending the same request again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from engine.db.session import session_scope
from engine.errors import EngineError, IngestListingTooLarge, NotFound
from engine.lake.collections import ensure_collection
from engine.lake.ingest import REMOTE_PROBE_THREADS, ingest, ingest_candidates, s3_listing
from engine.storage import Storage
from engine.textformats import excerpt
from sdk.schemas import IngestJobPublic, IngestReport, IngestRequest

if TYPE_CHECKING:
    from redis import Redis

    from engine.config import Settings

log = logging.getLogger(__name__)

INGEST_TASK = "metalake.lake.ingest_prefix"
_KEY = "metalake:ingest-job:{id}"
KEEP_SECONDS = 7 * 24 * 3600
MAX_FAILURES_KEPT = 1000
T = TypeVar("T")


class IngestJobNotFound(NotFound):
    """No background ingest has that id (its record is kept a week)."""

    code = "ingest_job_not_found"


class IngestJobs:
    """The jobs' records in Redis: one JSON document per job, written only by its worker once
    the API has created it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @classmethod
    def from_url(cls, url: str) -> IngestJobs:
        from redis import Redis

        return cls(Redis.from_url(url))

    def save(self, job: IngestJobPublic) -> None:
        self._redis.set(_KEY.format(id=job.id), job.model_dump_json(), ex=KEEP_SECONDS)

    def get(self, job_id: str) -> IngestJobPublic:
        raw = self._redis.get(_KEY.format(id=job_id))
        if raw is None:
            raise IngestJobNotFound(
                f"No background ingest has id {excerpt(job_id)!r} (records are kept a week).",
                job_id=job_id,
            )
        return IngestJobPublic.model_validate_json(raw)  # type: ignore[arg-type]


def start_job(
    request: IngestRequest,
    *,
    session: Session,
    jobs: IngestJobs,
    send: Callable[[str, dict[str, Any]], None],
) -> IngestJobPublic:
    """Record a queued job for `request` (an S3 prefix) and send it to a worker. The collection
    is made (or its content type checked) here, so a mismatch is told at once."""
    assert request.s3_uri is not None
    collection = ensure_collection(
        session=session, name=request.collection_name, content_type=request.content_type
    )
    job = IngestJobPublic(
        id=uuid.uuid4().hex,
        status="queued",
        s3_uri=request.s3_uri,
        report=IngestReport(collection_id=collection.id),
    )
    jobs.save(job)
    send(job.id, request.model_dump(mode="json"))
    return job


@dataclass(frozen=True)
class Background:
    """What the API needs to start jobs: their records and a way to send one to a worker."""

    jobs: IngestJobs
    send: Callable[[str, dict[str, Any]], None]


def ingest_or_start_job(
    request: IngestRequest,
    *,
    session: Session,
    settings: Settings,
    storage: Storage,
    admin: bool,
    background: Background | None,
) -> IngestReport | IngestJobPublic:
    """`ingest` in this request, or, for an S3 prefix over METALAKE_INGEST_MAX_LISTING, a job
    started in the background (listing stops at the limit; nothing is written before)."""
    try:
        return ingest(request, session=session, settings=settings, storage=storage, admin=admin)
    except IngestListingTooLarge:
        if background is None:
            raise
        return start_job(request, session=session, jobs=background.jobs, send=background.send)


def _pages(items: Iterable[T], size: int) -> Iterator[list[T]]:
    page: list[T] = []
    for item in items:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def run_job(
    job_id: str,
    request: IngestRequest,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    storage: Storage,
    jobs: IngestJobs,
) -> None:
    """Ingest the job's prefix page by page, saving progress after each page."""
    assert request.s3_uri is not None
    job = jobs.get(job_id)
    job.status = "running"
    jobs.save(job)
    totals = job.report
    try:
        members = (c for member, c in s3_listing(storage, request.s3_uri) if member)
        for page in _pages(members, settings.ingest_max_listing):
            job.listed += len(page)
            with session_scope(sessions) as session:
                report = ingest_candidates(
                    page,
                    request,
                    session=session,
                    settings=settings,
                    storage=storage,
                    threads=REMOTE_PROBE_THREADS,
                )
            job.done += len(page)
            totals.added += report.added
            totals.updated += report.updated
            totals.unchanged += report.unchanged
            room = MAX_FAILURES_KEPT - len(totals.failed)
            totals.failed.extend(report.failed[: max(room, 0)])
            jobs.save(job)
        job.status = "succeeded"
    except EngineError as exc:
        job.status, job.error = (
            "failed",
            (
                f"{exc.message} The files of the pages before were registered; send the same "
                "ingest again to go on (what is registered already is not written twice)."
            ),
        )
    except Exception as exc:
        log.exception("ingest job %s failed", job_id)
        job.status, job.error = (
            "failed",
            (
                f"The ingest stopped on an unexpected error ({type(exc).__name__}); the worker's "
                "log has it. Send the same ingest again to go on."
            ),
        )
    jobs.save(job)


def register_ingest_task(app: Any, context: Callable[[Any], Any]) -> None:
    """The worker side: `INGEST_TASK` on `app`, run with the worker's `context(app)`."""

    @app.task(name=INGEST_TASK)  # type: ignore[untyped-decorator, misc]
    def ingest_prefix(job_id: str, request: dict[str, Any]) -> None:
        worker = context(app)
        settings: Settings = worker.settings
        if not settings.redis_url:
            raise RuntimeError("a worker always has a broker URL")
        run_job(
            job_id,
            IngestRequest.model_validate(request),
            settings=settings,
            sessions=worker.sessions,
            storage=worker.storage,
            jobs=IngestJobs.from_url(settings.redis_url),
        )
