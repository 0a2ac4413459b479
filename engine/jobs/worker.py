"""A Celery worker process: the app with the tasks registered, and `metalake worker`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

from engine.config import Settings
from engine.jobs.celery_app import create_celery
from engine.jobs.predict import register_predict_task
from engine.jobs.queues import CONTROL_QUEUE, INFERENCE_QUEUE
from engine.jobs.tasks import register_tasks


def create_worker_app(settings: Settings) -> Celery:
    """The Celery app with the engine's tasks registered on it."""
    app = create_celery(settings)
    register_tasks(app)
    register_predict_task(app)
    return app


def worker_app() -> Celery:
    """The Celery app built from the environment's Settings (for tools that need an app)."""
    return create_worker_app(Settings())


def worker_argv(
    settings: Settings,
    *,
    queues: Sequence[str] = (CONTROL_QUEUE, INFERENCE_QUEUE),
    concurrency: int = 1,
    pool: str = "prefork",
    hostname: str | None = None,
) -> list[str]:
    """The `celery worker` arguments of `metalake worker`."""
    argv = [
        "worker",
        "-Q",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--loglevel",
        settings.log_level,
    ]
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str] = (CONTROL_QUEUE, INFERENCE_QUEUE),
    concurrency: int = 1,
    pool: str = "prefork",
    hostname: str | None = None,
) -> None:
    """Run a worker in the foreground (`metalake worker`) until it is told to stop."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    app = create_worker_app(settings)
    app.worker_main(
        worker_argv(settings, queues=queues, concurrency=concurrency, pool=pool, hostname=hostname)
    )
