"""The names the Celery app, its tasks and their senders share: queues and task names.

Constants only, so the app (`celery_app`), the tasks (`tasks`) and the senders (`dispatch`,
the lake's ingest jobs) import this module and not each other.
"""

from __future__ import annotations

CONTROL_QUEUE = "control"  # planning, index builds, ingest: bookkeeping
INFERENCE_QUEUE = "inference"  # chunks that run models (GPU machines may consume only this)

PLAN_TASK = "metalake.jobs.plan"
CHUNK_TASK = "metalake.jobs.chunk"
INDEX_TASK = "metalake.embeddings.index"
PING_TASK = "metalake.ping"
EXPORT_TASK = "metalake.exports.run"
