"""The Celery application, built from `Settings` where it is needed (never at import time):
as made here it sends tasks by name (the API, the lake's ingest jobs); a worker registers the
tasks on it (`engine/jobs/worker.py`).

Two queues, `control` and `inference`; tasks acknowledged late and prefetched one at a time.
Why, and how leases cover a killed worker: docs/jobs.md, "Inside a worker".
"""

from __future__ import annotations

from celery import Celery

from engine.config import Settings
from engine.jobs.queues import CONTROL_QUEUE


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
    return app
