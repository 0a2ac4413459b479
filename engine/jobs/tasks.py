"""The tasks registered on the Celery app: `plan` and `index` (control queue), `chunk`
(inference), and the recovery sweep each worker runs beside them.

Each worker process makes its `WorkerContext` on its first task and closes it at shutdown.
Chunks and plans run under leases (`engine/jobs/recovery.py`); the retry rules are in
docs/jobs.md ("When something fails mid-job", "Inside a worker").
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

from celery import Celery, signals

from engine.config import Settings
from engine.errors import ServiceUnavailable
from engine.jobs.context import worker_context
from engine.jobs.dispatch import CeleryDispatcher
from engine.jobs.queues import CHUNK_TASK, EXPORT_TASK, INDEX_TASK, PING_TASK, PLAN_TASK
from engine.jobs.recovery import PLAN_CHUNK, ChunkLease, RecoverySweeper
from engine.lake.ingest_jobs import register_ingest_task

log = logging.getLogger(__name__)
MAX_RETRIES = 3  # an unexpected error: 1, 2, 4 s
TRANSIENT_RETRIES = 10  # a service unavailable: 1, 2, 4, 8, 16, then 30 s (181 s in all)
MAX_BACKOFF = 30.0


def retry_countdown(exc: Exception, retries: int) -> float | None:
    """Seconds before retry number `retries + 1` of a task that raised `exc`; None: give up."""
    if isinstance(exc, ServiceUnavailable):
        return min(2.0**retries, MAX_BACKOFF) if retries < TRANSIENT_RETRIES else None
    return 2.0**retries if retries < MAX_RETRIES else None


def _acquire(lease: ChunkLease) -> bool:
    """Take the chunk's lease, waiting here while the database is unavailable (with the retry
    backoff): a worker that cannot reach the database takes no more chunks off the queue,
    where they wait safely, instead of turning each into a retry it holds."""
    for attempt in itertools.count():
        try:
            return lease.acquire()
        except ServiceUnavailable as exc:
            wait = retry_countdown(exc, attempt)
            if wait is None:
                raise
            log.warning(
                "job %d chunk %d: %s; waiting %g s before starting it",
                lease.job_id,
                lease.chunk,
                exc,
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def _fail_plan(context: Any, job_id: int, exc: Exception) -> None:
    """Mark a job whose planning failed for good as failed, with the reason (instead of
    leaving it queued forever)."""
    from engine.db.session import session_scope
    from engine.jobs.planning import fail_job

    log.exception("job %d: planning failed", job_id)
    try:
        with session_scope(context.sessions) as session:
            fail_job(
                session=session,
                job_id=job_id,
                reason=f"planning failed: {getattr(exc, 'message', None) or exc}",
            )
    except Exception:  # the database is still away: resume_job can plan it again later
        log.exception("job %d: could not record the planning failure", job_id)


def register_tasks(app: Celery) -> None:
    @app.task(name=PING_TASK)  # type: ignore[untyped-decorator, misc]
    def ping() -> str:
        return "pong"

    @app.task(name=PLAN_TASK, bind=True, max_retries=None)  # type: ignore[untyped-decorator, misc]
    def plan(self: Any, job_id: int) -> None:
        from engine.db.session import session_scope
        from engine.jobs.planning import plan_job

        context = worker_context(app)
        seconds = context.settings.chunk_lease_seconds
        lease = ChunkLease(
            context.sessions,
            job_id=job_id,
            chunk=PLAN_CHUNK,
            pid=os.getpid(),
            task_id=self.request.id or "",
            seconds=seconds,
        )
        try:
            try:
                if not _acquire(lease):
                    log.info(
                        "job %d: another worker is planning it (or the job is gone); "
                        "this delivery does nothing",
                        job_id,
                    )
                    return
                with session_scope(context.sessions) as session:
                    chunks = plan_job(
                        session=session, job_id=job_id, chunk_size=context.settings.chunk_size
                    )
            except ServiceUnavailable as exc:
                countdown = retry_countdown(exc, self.request.retries)
                if countdown is None:
                    _fail_plan(context, job_id, exc)
                    raise
                lease.keep(countdown + seconds)  # a lapse now means the retry was lost
                raise self.retry(exc=exc, countdown=countdown) from exc
            except Exception as exc:  # the selection cannot be planned: say so on the job
                _fail_plan(context, job_id, exc)
                raise
            try:
                CeleryDispatcher(app).chunks(job_id, chunks)
            except Exception:  # the broker is away: the lease lapses now, a sweep plans again
                lease.keep(0)
                raise
            log.info("job %d planned: %d chunk(s)", job_id, len(chunks))
        finally:
            lease.release()  # (after `keep`, nothing: the lease is left to lapse)

    @app.task(name=CHUNK_TASK, bind=True, max_retries=None)  # type: ignore[untyped-decorator, misc]
    def chunk(self: Any, job_id: int, number: int) -> None:
        from engine.jobs.chunk import fail_chunk, run_chunk

        context = worker_context(app)
        seconds = context.settings.chunk_lease_seconds
        lease = ChunkLease(
            context.sessions,
            job_id=job_id,
            chunk=number,
            pid=os.getpid(),
            task_id=self.request.id or "",
            seconds=seconds,
        )
        try:
            if not _acquire(lease):
                log.info(
                    "job %d chunk %d: another worker holds its lease (or the job is "
                    "gone); this delivery does nothing",
                    job_id,
                    number,
                )
                return
            run_chunk(context, job_id, number)
        except Exception as exc:
            countdown = retry_countdown(exc, self.request.retries)
            if countdown is not None:
                log.warning("job %d chunk %d: %s; retrying in %g s", job_id, number, exc, countdown)
                lease.keep(countdown + seconds)  # a lapse now means the retry was lost
                raise self.retry(exc=exc, countdown=countdown) from exc
            log.exception("job %d chunk %d failed", job_id, number)
            fail_chunk(context, job_id, number, f"the chunk failed: {exc}")
        finally:
            lease.release()

    @app.task(name=INDEX_TASK)  # type: ignore[untyped-decorator, misc]
    def index(space_id: int) -> None:
        from engine.embeddings.indexing import build_index

        context = worker_context(app)
        settings: Settings = context.settings
        build = build_index(
            context.db_engine,
            space_id,
            memory=settings.index_build_memory,
            workers=settings.index_build_workers,
        )
        if build is None:
            log.info("space %d: no index build (another one runs, or the space is gone)", space_id)

    register_ingest_task(app, worker_context)  # a large S3 prefix, ingested in the background

    @app.task(name=EXPORT_TASK)  # type: ignore[untyped-decorator, misc]
    def export(job_id: int) -> None:
        from engine.interop.export_jobs import archive_storage, run_export_job
        from engine.interop.formats import writer_for

        context = worker_context(app)
        run_export_job(
            job_id,
            sessions=context.sessions,
            storage=context.storage,
            archives=archive_storage(context.settings),
            writer_for=writer_for,
        )

    def start_recovery(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is not app:  # another app's worker in this process
            return
        settings: Settings = app.conf.metalake_settings
        if settings.recovery_interval > 0 and settings.database_url:
            sweeper = RecoverySweeper(settings, CeleryDispatcher(app))
            app.metalake_sweeper = sweeper  # type: ignore[attr-defined]
            sweeper.start()

    def stop_recovery(**_: Any) -> None:
        sweeper = getattr(app, "metalake_sweeper", None)
        if sweeper is not None:
            sweeper.stop()
            app.metalake_sweeper = None  # type: ignore[attr-defined]

    def close(**_: Any) -> None:
        context = getattr(app, "metalake_context", None)
        if context is not None and context.pid == os.getpid():
            context.close()
            app.metalake_context = None  # type: ignore[attr-defined]

    signals.worker_ready.connect(start_recovery, weak=False)
    signals.worker_shutdown.connect(stop_recovery, weak=False)
    signals.worker_process_shutdown.connect(close, weak=False)
    signals.worker_shutdown.connect(close, weak=False)
