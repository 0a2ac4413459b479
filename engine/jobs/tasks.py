"""The job tasks registered on the Celery app: `plan` (control queue) and `chunk` (inference).

Each worker process makes its `WorkerContext` on its first task and closes it when the
process shuts down. A chunk that cannot get past an unexpected error after a few retries fails
its items with the reason rather than leaving the job running forever.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals

from engine.config import Settings
from engine.errors import ServiceUnavailable
from engine.jobs.dispatch import CHUNK_TASK, PLAN_TASK, CeleryDispatcher

log = logging.getLogger(__name__)
MAX_RETRIES = 3


def _context(app: Celery) -> Any:
    from engine.jobs.context import WorkerContext

    context: WorkerContext | None = getattr(app, "metalake_context", None)
    if context is None or context.pid != os.getpid():  # first task, or a forked child
        settings: Settings = app.conf.metalake_settings
        context = WorkerContext(settings)
        app.metalake_context = context  # type: ignore[attr-defined]
    return context


def register_tasks(app: Celery) -> None:
    @app.task(name=PLAN_TASK, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator, misc]
    def plan(self: Any, job_id: int) -> None:
        from engine.db.session import session_scope
        from engine.jobs.planning import plan_job

        context = _context(app)
        try:
            with session_scope(context.sessions) as session:
                chunks = plan_job(session=session, job_id=job_id,
                                  chunk_size=context.settings.chunk_size)
        except ServiceUnavailable as exc:
            raise self.retry(exc=exc, countdown=5) from exc
        CeleryDispatcher(app).chunks(job_id, chunks)
        log.info("job %d planned: %d chunk(s)", job_id, len(chunks))

    @app.task(name=CHUNK_TASK, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator, misc]
    def chunk(self: Any, job_id: int, number: int) -> None:
        from engine.jobs.chunk import fail_chunk, run_chunk

        context = _context(app)
        try:
            run_chunk(context, job_id, number)
        except Exception as exc:
            if self.request.retries < MAX_RETRIES:
                log.warning("job %d chunk %d: %s; retrying", job_id, number, exc)
                raise self.retry(exc=exc, countdown=2 ** self.request.retries) from exc
            log.exception("job %d chunk %d failed", job_id, number)
            fail_chunk(context, job_id, number, f"the chunk failed: {exc}")

    def close(**_: Any) -> None:
        context = getattr(app, "metalake_context", None)
        if context is not None and context.pid == os.getpid():
            context.close()
            app.metalake_context = None  # type: ignore[attr-defined]

    signals.worker_process_shutdown.connect(close, weak=False)
    signals.worker_shutdown.connect(close, weak=False)
