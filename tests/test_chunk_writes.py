"""A chunk writes its results while the model works on its next requests, in one transaction
that is committed only for items that are still pending at the end (engine/jobs/chunk.py
`_Writer`). Run in-process with a real WorkerContext (PostgreSQL, model host subprocess) and
a bundle that waits at a gate before each batch, so the test decides where the chunk is."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.jobs import JobItem
from engine.db.models import Tag
from engine.db.session import session_scope
from engine.jobs.chunk import run_chunk
from engine.jobs.context import WorkerContext
from engine.jobs.planning import plan_job
from tests.fixtures.faults_cluster import BatchLog, Gate, gated_bundle, tiny_images, wait_for
from tests.fixtures.worker import settings, shared_envs_dir  # noqa: F401


@pytest.fixture
def gated_job(
    client: Any,
    tmp_path: Path,
    settings: Settings,
) -> dict[str, Any]:
    gate = Gate(tmp_path / "gate")
    gate.close()
    bundle = gated_bundle(
        tmp_path / "bundle", gate, BatchLog(tmp_path / "batches.jsonl"), name="gated"
    )
    cid = client.upload_files_to_collection(tiny_images(tmp_path / "imgs", 4), "image", "gated")
    client.register_model(bundle, "gated", "autotagging")
    job = client.auto_tag_collection(cid, "gated", (32, 32), 0.5, None, None, "local")
    return {"job_id": job["job_id"], "gate": gate}


def _in_transaction_with_writes(session: Session) -> bool:
    """Some other backend of this database holds an open transaction that has written."""
    session.rollback()
    return bool(
        session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
        )
    )


@pytest.mark.parametrize("cancel", [False, True])
def test_results_written_early_are_committed_only_for_items_still_pending(
    client: Any, session: Session, gated_job: dict[str, Any], settings: Settings, cancel: bool
) -> None:
    job_id, gate = gated_job["job_id"], gated_job["gate"]
    # the gated bundle waits on a file in the test's folder, which a sandboxed host cannot see
    worker_settings = settings.model_copy(
        update={"chunk_size": 4, "request_batch_size": 2, "sandbox": "off"}
    )
    context = WorkerContext(worker_settings)
    try:
        with session_scope(context.sessions) as planning:
            assert plan_job(session=planning, job_id=job_id, chunk_size=4) == [0]
        errors: list[BaseException] = []

        def chunk() -> None:
            try:
                run_chunk(context, job_id, 0)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=chunk)
        thread.start()
        gate.allow(1)  # the first request (2 images) is answered...
        # ...and its tags are written in the chunk's open transaction while batch 2 waits
        wait_for(
            lambda: _in_transaction_with_writes(session),
            timeout=60,
            what="the chunk's early writes",
        )
        session.rollback()
        assert not list(session.scalars(select(Tag)))  # not committed yet
        if cancel:
            assert client.cancel_job(job_id)["status"] == "cancelled"
        released = datetime.now(UTC)
        gate.open()
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert not errors
    finally:
        context.close()
    session.rollback()
    statuses = sorted(session.scalars(select(JobItem.status).where(JobItem.job_id == job_id)))
    tags = list(session.scalars(select(Tag).where(Tag.job_id == job_id)))
    final = client.get_job(job_id)
    if cancel:
        # the running chunk's results are dropped, the early ones included
        assert statuses == ["cancelled"] * 4
        assert tags == []
        assert final["status"] == "cancelled"
        assert final["done"] == 0
    else:
        assert statuses == ["done"] * 4
        assert sorted(tag.name for tag in tags) == ["circle"] * 4
        assert final["status"] == "succeeded"
        # finished when the chunk committed, not when its transaction began (the first write)
        assert datetime.fromisoformat(str(final["finished_at"])) >= released
        assert final["done"] == 4
