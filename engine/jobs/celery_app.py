"""The Celery application, built from `Settings` at worker bootstrap (never at import time).

Queues: `control` (planning, bookkeeping) and `inference` (chunks that run models), so GPU
machines can consume only `inference`. Tasks are acknowledged late and prefetched one at a
time. A pool process that dies mid-task has its task requeued at once
(`task_reject_on_worker_lost`); a whole worker killed mid-task leaves its message in Redis's
`unacked` set until the visibility timeout, kept long (3 h) so that a long chunk is never
handed to a second worker while it runs. Chunk leases and the recovery sweep
(`engine/jobs/recovery.py`) send such a chunk again within about a minute instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

from engine.config import Settings

CONTROL_QUEUE = "control"
INFERENCE_QUEUE = "inference"


def create_celery(settings: Settings) -> Celery:
    if not settings.redis_url:
        raise RuntimeError("The worker needs REDIS_URL (or start everything with `metalake up`).")
    app = Celery("metalake", broker=settings.redis_url, backend=None)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=CONTROL_QUEUE,
        task_queues_default_exchange_type="direct",
        broker_transport_options={"visibility_timeout": 3 * 3600},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    app.conf.metalake_settings = settings
    from engine.jobs.tasks import register_tasks

    register_tasks(app)

    @app.task(name="metalake.ping")  # type: ignore[untyped-decorator, misc]
    def ping() -> str:
        return "pong"

    return app


def worker_app() -> Celery:
    """The Celery app built from the environment's Settings (for tools that need an app)."""
    return create_celery(Settings())


def worker_argv(
    settings: Settings,
    *,
    queues: Sequence[str] = (CONTROL_QUEUE, INFERENCE_QUEUE),
    concurrency: int = 1,
    pool: str = "prefork",
    hostname: str | None = None,
) -> list[str]:
    """The `celery worker` arguments of `metalake worker`."""
    argv = ["worker", "-Q", ",".join(queues), "--concurrency", str(concurrency),
            "--pool", pool, "--loglevel", settings.log_level]
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
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    app = create_celery(settings)
    app.worker_main(worker_argv(settings, queues=queues, concurrency=concurrency, pool=pool,
                                hostname=hostname))
