"""Enqueueing job work on Celery by task name (the API never imports the task code)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from celery import Celery

from engine.jobs.queues import (
    CHUNK_TASK,
    CONTROL_QUEUE,
    EXPORT_TASK,
    INDEX_TASK,
    INFERENCE_QUEUE,
    PLAN_TASK,
)


class Dispatcher(Protocol):
    def plan(self, job_id: int) -> None: ...

    def chunks(self, job_id: int, chunks: Iterable[int]) -> None: ...

    def index(self, space_id: int) -> None: ...

    def export(self, job_id: int) -> None: ...


class CeleryDispatcher:
    """Sends `plan` and index builds to the control queue, chunks to the inference queue."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def plan(self, job_id: int) -> None:
        self._app.send_task(PLAN_TASK, args=[job_id], queue=CONTROL_QUEUE)

    def chunks(self, job_id: int, chunks: Iterable[int]) -> None:
        for chunk in chunks:
            self._app.send_task(CHUNK_TASK, args=[job_id, chunk], queue=INFERENCE_QUEUE)

    def index(self, space_id: int) -> None:
        self._app.send_task(INDEX_TASK, args=[space_id], queue=CONTROL_QUEUE)

    def export(self, job_id: int) -> None:
        self._app.send_task(EXPORT_TASK, args=[job_id], queue=CONTROL_QUEUE)
