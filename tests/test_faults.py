"""Fault injection: real processes killed and restarted in the middle of jobs.

A real API (uvicorn), two `metalake worker` processes (prefork: a main process and a pool
child each), and a PostgreSQL and a Redis of this module's own, so restarting them disturbs no
other test. Jobs use tiny images, chunks of 4 and a bundle that holds every batch at a gate
(tests/faults_cluster.py), so "mid-job" is a state the test waits for, not a sleep. Workers
run with a 4 s chunk lease and a 1 s recovery sweep (production: 60 s and 15 s).

Every test checks the rows: each item moved out of pending exactly once (`attempts`), and one
tag, annotation or embedding per file and model version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from engine.config import Settings
from engine.db.embeddings import Embedding, EmbeddingSpace
from engine.db.jobs import Job, JobChunk, JobItem
from engine.db.models import Annotation, File, Tag
from engine.db.session import session_scope
from engine.runtime.postgres import EmbeddedPostgres
from engine.runtime.redis import EmbeddedRedis
from sdk.errors import NotFound
from tests.fixtures.faults_cluster import (
    BatchLog,
    Gate,
    Worker,
    alive,
    gated_bundle,
    tiny_images,
    wait_for,
)
from tests.fixtures.services import free_port
from tests.fixtures.worker import shared_envs_dir  # noqa: F401

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

CHUNK = 4  # files per chunk, and per model request
LEASE_SECONDS = 4.0
SIZE = (24, 16)  # the images' own size: nothing to resize
TEMPLATE = "faults_template"


# -- services of this module's own ----------------------------------------------------------------
@dataclass
class Services:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis


@pytest.fixture(scope="module")
def faults_services() -> Iterator[Services]:
    """PostgreSQL + pgvector and Redis (append-only, as `metalake up` runs it) for this module,
    outside pytest's temp root (see `services_dir` in conftest.py)."""
    from engine.db.migrate import upgrade

    root = Path(tempfile.mkdtemp(prefix="metalake-faults-"))
    postgres = EmbeddedPostgres(root / "pg" / "data", port=free_port())
    broker = EmbeddedRedis(root / "redis" / "data", port=free_port())
    try:
        postgres.start()
        broker.start()
        with psycopg.connect(postgres.superuser_url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        upgrade(postgres.superuser_url(TEMPLATE))
        yield Services(postgres, broker)
    finally:
        broker.stop()
        postgres.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(faults_services: Services) -> Iterator[str]:
    postgres = faults_services.postgres
    name = f"faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.superuser_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    yield postgres.superuser_url(name)
    postgres.start()  # a test may have left it stopped
    with psycopg.connect(postgres.superuser_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def lease_seconds() -> float:
    """The workers' METALAKE_CHUNK_LEASE_SECONDS (a test may parametrize it)."""
    return LEASE_SECONDS


@pytest.fixture
def settings(
    database_url: str,
    faults_services: Services,
    tmp_path: Path,
    shared_envs_dir: Path,
    lease_seconds: float,
) -> Settings:
    faults_services.redis.start()  # a test may have left it stopped
    redis_url = faults_services.redis.url
    redis.Redis.from_url(redis_url).flushdb()  # no message of an earlier test
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url=redis_url,
        envs_dir=shared_envs_dir,
        chunk_size=CHUNK,
        request_batch_size=CHUNK,
        chunk_lease_seconds=lease_seconds,
        recovery_interval=1,
    )


# -- two workers, a gate, the batch log -----------------------------------------------------------
@dataclass
class Cluster:
    workers: list[Worker]
    gate: Gate
    batches: BatchLog
    sessions: sessionmaker[Session]

    def live_leases(self) -> list[JobChunk]:
        with session_scope(self.sessions) as session:
            return list(
                session.scalars(
                    select(JobChunk).where(
                        JobChunk.owner.is_not(None), JobChunk.lease_expires_at > func.now()
                    )
                )
            )

    def planning(self, job_id: int) -> JobChunk | None:
        """The live lease of the job's planning, if a worker is planning it."""
        from engine.jobs.recovery import PLAN_CHUNK

        return next(
            (
                lease
                for lease in self.live_leases()
                if (lease.job_id, lease.chunk) == (job_id, PLAN_CHUNK)
            ),
            None,
        )

    def in_flight(self, count: int, *, timeout: float = 60) -> None:
        """Wait until `count` batches in all have reached the (closed) gate."""
        wait_for(
            lambda: len(self.batches.events("start")) >= count,
            timeout=timeout,
            what=f"{count} batches at the gate",
        )

    def holder(self, lease: JobChunk) -> Worker:
        assert lease.owner is not None
        pid = int(lease.owner.split(":")[1])
        return next(w for w in self.workers if pid in w.pids())


@pytest.fixture
def cluster(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[Cluster]:
    extra = {
        "METALAKE_REQUEST_BATCH_SIZE": str(settings.request_batch_size),
        "METALAKE_CHUNK_LEASE_SECONDS": str(settings.chunk_lease_seconds),
        "METALAKE_RECOVERY_INTERVAL": str(settings.recovery_interval),
    }
    gate, batches = Gate(tmp_path / "gate"), BatchLog(tmp_path / "batches.jsonl")
    workers = [
        Worker.start(
            f"faults{n}-{uuid.uuid4().hex[:6]}", settings, tmp_path / f"worker{n}.log", extra
        )
        for n in (1, 2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        yield Cluster(workers, gate, batches, session_factory)
    finally:
        gate.open()
        for worker in workers:  # both shut down at once, then each is waited for
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in workers:
            worker.stop()


# -- helpers --------------------------------------------------------------------------------------
def make_lake(client: Any, tmp_path: Path, count: int) -> int:
    cid: int = client.upload_files_to_collection(
        tiny_images(tmp_path / "imgs", count), "image", "faults"
    )
    return cid


def register(
    client: Any,
    cluster: Cluster,
    tmp_path: Path,
    name: str,
    application: str = "autotagging",
    **options: Any,
) -> None:
    bundle = gated_bundle(
        tmp_path / "bundles" / name, cluster.gate, cluster.batches, name=name, **options
    )
    client.register_model(bundle, name, application)


def autotag(client: Any, cid: int, model: str) -> int:
    job_id: int = client.auto_tag_collection(cid, model, SIZE, 0.5, None, None, "local")["job_id"]
    return job_id


def finish(client: Any, job_id: int, timeout: float = 120) -> dict[str, Any]:
    job: dict[str, Any] = client.wait_for_job(
        job_id, timeout=timeout, progress=False, poll_interval=0.2
    )
    return job


def items(session: Session, job_id: int) -> list[JobItem]:
    session.expire_all()
    return list(session.scalars(select(JobItem).where(JobItem.job_id == job_id)))


def assert_each_item_done_once(session: Session, job_id: int, total: int) -> None:
    rows = items(session, job_id)
    assert len(rows) == total
    assert {(i.status, i.attempts) for i in rows} == {("done", 1)}


def version_of(session: Session, job_id: int) -> int:
    version = session.scalar(select(Job.model_version_id).where(Job.id == job_id))
    assert version is not None
    return version


def per_file(session: Session, table: Any, version_id: int) -> dict[int, int]:
    """Rows per file of one model version's machine tags / annotations."""
    return dict(
        session.execute(
            select(table.file_id, func.count())
            .where(table.model_version_id == version_id, table.source == "machine")
            .group_by(table.file_id)
        ).all()
    )


def assert_one_result_per_file(session: Session, job_id: int, total: int) -> None:
    version = version_of(session, job_id)
    files = {i.file_id for i in items(session, job_id)}
    for table in (Tag, Annotation):
        counts = per_file(session, table, version)
        assert set(counts) == files, table.__tablename__
        assert set(counts.values()) == {1}, f"duplicate {table.__tablename__}: {counts}"
    assert len(files) == total


# -- the tests ------------------------------------------------------------------------------------
def test_worker_killed_mid_job_another_worker_finishes_it(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path
) -> None:
    """kill -9 of a whole worker (main process and pool child) holding a chunk: the chunk's
    lease lapses, the other worker's sweep sends it again, and the other worker runs it."""
    cid = make_lake(client, tmp_path, 48)
    register(client, cluster, tmp_path, "tagger")
    register(client, cluster, tmp_path, "embedder", "embedding", embedding_dim=8)
    cluster.gate.close()
    tag_job = autotag(client, cid, "tagger")
    embed_job = client.generate_embeddings_for_collection(cid, "embedder", None, None, "local")[
        "job_id"
    ]
    cluster.in_flight(2)

    def two_leases() -> list[JobChunk]:
        found = cluster.live_leases()
        return found if len(found) == 2 else []

    leases = wait_for(two_leases, timeout=30, what="both workers to hold a chunk")
    assert {id(cluster.holder(lease)) for lease in leases} == {id(w) for w in cluster.workers}
    victim, survivor = cluster.workers
    lost = next(lease for lease in leases if cluster.holder(lease) is victim)

    victim.kill()
    killed = time.monotonic()
    wait_for(
        lambda: not any(alive(pid) for pid in victim.pids()),
        timeout=10,
        what="the killed worker's processes to be gone",
    )
    cluster.gate.open()

    for job_id in (tag_job, embed_job):
        final = finish(client, job_id, timeout=90)
        assert (final["status"], final["done"], final["failed"]) == ("succeeded", 48, 0)
    # recovered by the lease + sweep, not by the broker's 3 h visibility timeout
    assert time.monotonic() - killed < 60
    assert survivor.process.poll() is None

    session.expire_all()
    row = session.get(JobChunk, (lost.job_id, lost.chunk))
    assert row is not None
    assert (row.owner, row.runs, row.recoveries) == (None, 2, 1)
    assert "sent again" in survivor.log()
    redone = [i for i in items(session, lost.job_id) if i.chunk == lost.chunk]
    assert len(redone) == CHUNK
    assert {(i.status, i.attempts) for i in redone} == {("done", 1)}

    for job_id in (tag_job, embed_job):
        assert_each_item_done_once(session, job_id, 48)
    assert_one_result_per_file(session, tag_job, 48)
    vectors = dict(
        session.execute(
            select(Embedding.file_id, func.count())
            .join(EmbeddingSpace)
            .where(EmbeddingSpace.model_version_id == version_of(session, embed_job))
            .group_by(Embedding.file_id)
        ).all()
    )
    assert len(vectors) == 48
    assert set(vectors.values()) == {1}


def test_worker_killed_while_planning_the_job_is_planned_again(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path, database_url: str
) -> None:
    """kill -9 of the worker that is planning a job (its items half inserted, held up by a
    lock the test takes on `job_items`): its transaction rolls back, its plan lease lapses, the
    other worker's sweep sends the plan again, and the job runs, each item once."""
    from engine.jobs.recovery import PLAN_CHUNK

    cid = make_lake(client, tmp_path, 24)
    register(client, cluster, tmp_path, "tagger")
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE job_items IN SHARE MODE")  # reads go on; inserts wait
        job_id = autotag(client, cid, "tagger")
        lease = wait_for(
            lambda: cluster.planning(job_id), timeout=30, what="a worker to start planning the job"
        )
        victim = cluster.holder(lease)
        survivor = next(w for w in cluster.workers if w is not victim)
        victim.kill()
        wait_for(
            lambda: not any(alive(pid) for pid in victim.pids()),
            timeout=10,
            what="the killed worker's processes to be gone",
        )
        assert client.get_job(job_id)["status"] == "queued"
        blocker.rollback()  # the killed plan's insert ends, and its transaction rolls back

    final = finish(client, job_id, timeout=90)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 24, 0)
    assert "planned again" in survivor.log()
    session.expire_all()
    row = session.get(JobChunk, (job_id, PLAN_CHUNK))
    assert row is not None
    assert (row.owner, row.runs, row.recoveries) == (None, 2, 1)
    assert_each_item_done_once(session, job_id, 24)
    assert_one_result_per_file(session, job_id, 24)


def test_a_plan_that_cannot_send_its_chunks_is_planned_again(
    client: Any,
    cluster: Cluster,
    session: Session,
    tmp_path: Path,
    database_url: str,
    faults_services: Services,
) -> None:
    """Redis dies, and comes back empty, while a job is planned: the plan commits its items
    but cannot send the chunks, lets its lease lapse at once, and once the broker is back the
    sweep plans the job again (its messages, the plan's included, were lost with Redis)."""
    from engine.jobs.recovery import PLAN_CHUNK

    cid = make_lake(client, tmp_path, 16)
    register(client, cluster, tmp_path, "tagger")
    broker = faults_services.redis
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE job_items IN SHARE MODE")
        job_id = autotag(client, cid, "tagger")
        wait_for(
            lambda: cluster.planning(job_id), timeout=30, what="a worker to start planning the job"
        )
        kill_redis(faults_services, wipe=True)
        blocker.rollback()

    def plan_lease() -> JobChunk | None:
        with session_scope(cluster.sessions) as s:
            row = s.get(JobChunk, (job_id, PLAN_CHUNK))
            s.expunge_all()
            return row

    # planned (items committed), and the lease left to lapse rather than released
    lapsing = wait_for(
        lambda: (
            (row := plan_lease()) is not None and (row.owner or "").startswith("retry:") and row
        ),
        timeout=60,
        what="the plan to give up sending its chunks",
    )
    assert client.get_job(job_id)["status"] == "running"
    assert lapsing.runs == 1
    broker.start()

    final = finish(client, job_id, timeout=120)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 16, 0)
    assert any("planned again" in w.log() for w in cluster.workers)
    row = plan_lease()
    assert row is not None
    assert (row.owner, row.recoveries) == (None, 1)
    assert_each_item_done_once(session, job_id, 16)
    assert_one_result_per_file(session, job_id, 16)


@pytest.mark.parametrize("lease_seconds", [30.0])  # no lease lapses during this test
def test_pool_process_killed_mid_chunk_is_run_again_at_once(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path
) -> None:
    """kill -9 of the pool process alone (what the OOM killer does): Celery requeues its task,
    and the requeued delivery, carrying the same task id, takes the lease over at once: well
    before the lease could lapse and a sweep send the chunk again."""
    cid = make_lake(client, tmp_path, 24)
    register(client, cluster, tmp_path, "tagger")
    cluster.gate.close()
    job_id = autotag(client, cid, "tagger")
    cluster.in_flight(2)
    lease = next(
        lease for lease in cluster.live_leases() if cluster.holder(lease) is cluster.workers[0]
    )
    assert lease.owner is not None
    child = int(lease.owner.split(":")[1])
    os.kill(child, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not alive(child), timeout=10, what="the pool process to die")
    cluster.gate.open()

    final = finish(client, job_id, timeout=25)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 24, 0)
    assert time.monotonic() - killed < 30  # before the killed process's lease could lapse
    session.expire_all()
    row = session.get(JobChunk, (lease.job_id, lease.chunk))
    assert row is not None
    assert (row.owner, row.runs, row.recoveries) == (None, 2, 0)  # no sweep was needed
    assert cluster.workers[0].process.poll() is None
    assert_each_item_done_once(session, job_id, 24)
    assert_one_result_per_file(session, job_id, 24)


def kill_redis(services: Services, *, wipe: bool) -> None:
    """kill -9 the module's Redis, and (`wipe`) delete its data."""
    broker = services.redis
    pid = broker.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not broker.is_running(), timeout=10, what="Redis to die")
    if wipe:
        for path in broker.data_dir.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def restart_redis(services: Services, *, wipe: bool) -> None:
    """kill -9 the module's Redis and start it again, on its data or (`wipe`) empty."""
    kill_redis(services, wipe=wipe)
    services.redis.start()


def test_redis_restarted_mid_job_loses_nothing(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path, faults_services: Services
) -> None:
    """Redis killed and restarted on its append-only file while two chunks run: the workers
    reconnect and the job completes on its own, each item done once."""
    cid = make_lake(client, tmp_path, 40)
    register(client, cluster, tmp_path, "tagger")
    cluster.gate.close()
    job_id = autotag(client, cid, "tagger")
    cluster.in_flight(2)

    restart_redis(faults_services, wipe=False)
    cluster.gate.open()

    final = finish(client, job_id)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 40, 0)
    assert all(w.process.poll() is None for w in cluster.workers)
    assert any("Connection to broker lost" in w.log() for w in cluster.workers)
    # the messages Celery restored on reconnect found their chunks done: each chunk reached
    # the model once
    assert len(cluster.batches.events("end")) == 40 // CHUNK
    assert_each_item_done_once(session, job_id, 40)
    assert_one_result_per_file(session, job_id, 40)


def test_redis_restarted_without_its_data_is_resumed_with_one_call(
    client: Any,
    cluster: Cluster,
    session: Session,
    tmp_path: Path,
    faults_services: Services,
    api_url: str,
    make_key: Callable[..., str],
) -> None:
    """A Redis that comes back empty has lost the queued chunks: the job stops progressing
    with items pending; one `metalake jobs resume` sends them again and the job completes."""
    from engine.cli import app

    cid = make_lake(client, tmp_path, 40)
    register(client, cluster, tmp_path, "tagger")
    cluster.gate.close()
    job_id = autotag(client, cid, "tagger")
    cluster.in_flight(2)

    restart_redis(faults_services, wipe=True)
    cluster.gate.open()

    # the two chunks in flight finish; nothing else is left in the broker to run
    wait_for(
        lambda: client.get_job(job_id)["done"] == 2 * CHUNK and not cluster.live_leases(),
        timeout=60,
        what="the chunks in flight to finish",
    )
    time.sleep(3)  # three sweeps: the job stays stalled (no lease lapsed: nothing to recover)
    stalled = client.get_job(job_id)
    assert (stalled["status"], stalled["done"]) == ("running", 2 * CHUNK)

    key = make_key("write", name="resume")
    result = CliRunner().invoke(
        app,
        ["jobs", "resume", str(job_id)],
        prog_name="metalake",
        env={"METALAKE_URL": api_url, "METALAKE_API_KEY": key},
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert str(job_id) in result.stdout

    final = finish(client, job_id)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 40, 0)
    assert_each_item_done_once(session, job_id, 40)
    assert_one_result_per_file(session, job_id, 40)
    # resuming a finished job returns it as it is; an unknown one is a 404
    assert client.resume_job(job_id) == client.get_job(job_id)
    with pytest.raises(NotFound):
        client.resume_job(job_id + 1000)


def test_postgres_restarted_mid_job_chunks_retry_and_the_job_completes(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path, faults_services: Services
) -> None:
    """PostgreSQL stops while two chunks are inside the model: their writes fail, the chunks
    retry with backoff (beyond the first few seconds) until it is back; the job completes."""
    cid = make_lake(client, tmp_path, 40)
    register(client, cluster, tmp_path, "tagger")
    cluster.gate.close()
    job_id = autotag(client, cid, "tagger")
    cluster.in_flight(2)

    postgres = faults_services.postgres
    postgres.stop("immediate")
    cluster.gate.open()  # both chunks now try to write to a database that is gone
    # down for longer than a few quick retries would last: until both chunks wait 8 s
    wait_for(
        lambda: all(re.search(r"(retrying in|waiting) 8 s", w.log()) for w in cluster.workers),
        timeout=60,
        what="both workers to back off 8 s",
    )
    postgres.start()

    final = finish(client, job_id)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 40, 0)
    logs = "".join(w.log() for w in cluster.workers)
    assert "database is unavailable" in logs
    assert not re.search(r"chunk \d+ failed", logs)  # no chunk gave up
    assert_each_item_done_once(session, job_id, 40)
    assert_one_result_per_file(session, job_id, 40)


def test_model_host_killed_mid_batch_fails_that_batch_with_a_reason(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path
) -> None:
    """kill -9 of a model host inside predict_fn: that batch's items fail with the reason, the
    worker starts a new host for the next chunks, the job finishes; retry_failed redoes them."""
    cid = make_lake(client, tmp_path, 32)
    register(client, cluster, tmp_path, "tagger")
    cluster.gate.close()
    job_id = autotag(client, cid, "tagger")
    cluster.in_flight(2)
    killed = cluster.batches.events("start")[0]["pid"]
    os.kill(killed, signal.SIGKILL)
    cluster.gate.open()

    final = finish(client, job_id)
    assert (final["status"], final["done"], final["failed"]) == ("partially_failed", 28, 4)
    assert len(final["errors"]) == 4
    for error in final["errors"]:
        assert "model host" in error["error"]
        assert "killed by signal SIGKILL" in error["error"]
    assert all(w.process.poll() is None for w in cluster.workers)  # the workers lived on

    failed_before = {i.file_id for i in items(session, job_id) if i.status == "failed"}
    client.retry_failed(job_id)
    final = finish(client, job_id)
    assert (final["status"], final["done"], final["failed"]) == ("succeeded", 32, 0)
    rows = items(session, job_id)
    assert {i.file_id for i in rows if i.attempts == 2} == failed_before
    assert {(i.status, i.attempts) for i in rows if i.file_id not in failed_before} == {("done", 1)}
    assert_one_result_per_file(session, job_id, 32)


def test_cancel_mid_job_starts_no_new_chunk_and_keeps_results(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path
) -> None:
    """Two chunks done, two inside the model, six queued: cancel. The two inside finish but
    write nothing, the queued ones never reach the model, the first two chunks' results stay."""
    cid = make_lake(client, tmp_path, 40)
    register(client, cluster, tmp_path, "tagger")
    cluster.gate.close()
    job_id = autotag(client, cid, "tagger")
    cluster.in_flight(2)
    cluster.gate.allow(2)  # the two chunks at the gate go on; the next two stop there
    cluster.in_flight(4)
    wait_for(
        lambda: client.get_job(job_id)["done"] == 2 * CHUNK, timeout=30, what="two chunks done"
    )

    cancelled = client.cancel_job(job_id)
    assert cancelled["status"] == "cancelled"
    opened = time.time()
    cluster.gate.open()

    chunks = 40 // CHUNK

    def drained() -> bool:  # every chunk delivered and let go
        with session_scope(cluster.sessions) as s:
            rows = list(
                s.scalars(
                    select(JobChunk).where(  # (not the plan's lease, chunk -1)
                        JobChunk.job_id == job_id, JobChunk.chunk >= 0
                    )
                )
            )
        return len(rows) == chunks and all(r.owner is None for r in rows)

    wait_for(drained, timeout=60, what="the queued chunks to be delivered")
    assert cluster.batches.events("start", after=opened) == []  # none reached the model
    assert len(cluster.batches.events("end")) == 4  # the two done, the two cancelled

    final = client.get_job(job_id)
    assert (final["status"], final["done"], final["failed"]) == ("cancelled", 2 * CHUNK, 0)
    rows = items(session, job_id)
    done = {i.file_id for i in rows if i.status == "done"}
    assert len(done) == 2 * CHUNK
    assert {i.status for i in rows} == {"done", "cancelled"}
    version = version_of(session, job_id)
    assert set(per_file(session, Tag, version)) == done  # results so far kept, no others
    assert set(per_file(session, Annotation, version)) == done


def test_two_jobs_with_different_models_on_one_collection_keep_results_apart(
    client: Any, cluster: Cluster, session: Session, tmp_path: Path
) -> None:
    """Two autotaggers whose label lists name the same classes in a different order run at
    once on one collection: each file gets each model's own tag, box and job, once."""
    cid = make_lake(client, tmp_path, 40)
    register(
        client, cluster, tmp_path, "first", labels=("circle", "square", "triangle"), confidence=0.9
    )
    register(
        client, cluster, tmp_path, "second", labels=("square", "circle", "triangle"), confidence=0.6
    )
    first, second = autotag(client, cid, "first"), autotag(client, cid, "second")
    finals = {job_id: finish(client, job_id) for job_id in (first, second)}
    for final in finals.values():
        assert (final["status"], final["done"], final["failed"]) == ("succeeded", 40, 0)
    assert finals[second]["started_at"] < finals[first]["finished_at"]  # they overlapped

    expected = {first: ("circle", 0.9), second: ("square", 0.6)}
    for job_id, (label, confidence) in expected.items():
        assert_each_item_done_once(session, job_id, 40)
        assert_one_result_per_file(session, job_id, 40)
        version = version_of(session, job_id)
        tags = session.execute(
            select(Tag.name, Tag.confidence, Tag.job_id).where(Tag.model_version_id == version)
        ).all()
        assert {(t.name, round(t.confidence, 3), t.job_id) for t in tags} == {
            (label, confidence, job_id)
        }
        boxes = session.execute(
            select(Annotation.label, Annotation.job_id).where(
                Annotation.model_version_id == version
            )
        ).all()
        assert {tuple(b) for b in boxes} == {(label, job_id)}

    # running the first model again replaces its own results and leaves the second's alone
    second_rows = set(
        session.scalars(select(Tag.id).where(Tag.model_version_id == version_of(session, second)))
    )
    again = autotag(client, cid, "first")
    assert finish(client, again)["status"] == "succeeded"
    session.expire_all()
    assert (
        set(
            session.scalars(
                select(Tag.id).where(Tag.model_version_id == version_of(session, second))
            )
        )
        == second_rows
    )
    assert set(
        session.scalars(
            select(Tag.job_id).where(Tag.model_version_id == version_of(session, first))
        )
    ) == {again}
    assert_one_result_per_file(session, again, 40)


# -- the lease rules, without workers -------------------------------------------------------------
def test_lease_rules_sweep_and_resume(
    settings: Settings, session: Session, session_factory: sessionmaker[Session]
) -> None:
    """Who may take a chunk's lease; what the sweep sends again (to the real broker) and what
    `resume_job` would send."""
    from engine.jobs.celery_app import create_celery
    from engine.jobs.dispatch import CeleryDispatcher
    from engine.jobs.recovery import (
        PLAN_CHUNK,
        ChunkLease,
        owner_id,
        recover_lapsed,
        resumable_chunks,
    )
    from tests.fixtures.embedding_factory import make_files

    make_files(session, "leases", 8)
    files = list(session.scalars(select(File.id).order_by(File.id)))
    jobs = [
        Job(kind="autotagging", platform="local", status=status, cancel_requested=cancel)
        for status, cancel in (("running", False), ("cancelled", True))
    ]
    session.add_all(jobs)
    session.flush()
    running, cancelled = (job.id for job in jobs)
    for job in jobs:  # chunk c holds files 2c, 2c+1; chunk 2 is done
        session.add_all(
            JobItem(
                job_id=job.id, file_id=f, chunk=n // 2, status="done" if n // 2 == 2 else "pending"
            )
            for n, f in enumerate(files)
        )
    session.commit()

    def lease(chunk: int, task: str, pid: int = os.getpid(), job: int = running) -> ChunkLease:
        return ChunkLease(
            session_factory, job_id=job, chunk=chunk, pid=pid, task_id=task, seconds=LEASE_SECONDS
        )

    first = lease(0, "t1")
    assert first.acquire()
    assert not lease(0, "t2").acquire()  # a live lease of another task: a duplicate
    # the same task id, but the holder still runs: a copy (e.g. restored by the broker)
    assert not lease(0, "t1", pid=os.getppid()).acquire()
    again = lease(0, "t1")
    assert again.acquire()  # the same task in the same process: its own retry
    first.keep(60)  # a retry is scheduled: only that task may take it
    again.release()  # (no longer its lease: changes nothing)
    assert not lease(0, "t2").acquire()
    retry = lease(0, "t1", pid=os.getppid())
    assert retry.acquire()
    retry.release()

    dead = psutil.Popen(["true"])
    dead.wait()
    with session_scope(session_factory) as s:  # chunk 1: held by a pool process now gone
        s.add(
            JobChunk(
                job_id=running,
                chunk=1,
                owner=owner_id(dead.pid, "t3"),
                lease_expires_at=func.now() + timedelta(minutes=5),
            )
        )
    assert not lease(1, "t4").acquire()
    requeued = lease(1, "t3")  # Celery's requeue of t3 takes it over at once
    assert requeued.acquire()
    requeued.keep(0)  # its retry is lost: the lease lapses

    with session_scope(session_factory) as s:  # more lapsed leases: done, cancelled, live
        s.add_all(
            [
                JobChunk(job_id=running, chunk=2, owner="gone:1:t5"),
                JobChunk(job_id=cancelled, chunk=0, owner="gone:1:t6"),
                JobChunk(
                    job_id=running,
                    chunk=3,
                    owner="alive:1:t7",
                    lease_expires_at=func.now() + timedelta(minutes=5),
                ),
            ]
        )
        s.execute(
            update(JobChunk)
            .where(JobChunk.owner.like("gone:%"))
            .values(lease_expires_at=func.now() - timedelta(seconds=1))
        )
        s.execute(
            update(JobChunk)
            .where(JobChunk.chunk == 1)
            .values(lease_expires_at=func.now() - timedelta(seconds=1))
        )

    # Plans: lapsed plan leases of a queued job (killed before its plan committed) and of the
    # running job (killed before it sent every chunk) are planned again; those of a finished
    # or cancelled job are only cleared.
    queued, done = (
        Job(kind="autotagging", platform="local", status=status)
        for status in ("queued", "succeeded")
    )
    with session_scope(session_factory) as s:
        s.add_all([queued, done])
        s.flush()
        queued_id, done_id = queued.id, done.id
        s.add_all(
            [
                JobChunk(
                    job_id=job,
                    chunk=PLAN_CHUNK,
                    owner=f"gone:1:p{job}",
                    lease_expires_at=func.now() - timedelta(seconds=1),
                )
                for job in (queued_id, running, cancelled, done_id)
            ]
        )

    app = create_celery(settings)
    broker = redis.Redis.from_url(settings.redis_url or "")
    with session_scope(session_factory) as s:
        assert resumable_chunks(s, running) == [0, 1]  # pending, and not under a live lease
        assert recover_lapsed(s, CeleryDispatcher(app)) == {
            running: [PLAN_CHUNK, 1],
            queued_id: [PLAN_CHUNK],
        }
    with session_scope(session_factory) as s:  # a second sweep finds nothing left to do
        assert recover_lapsed(s, CeleryDispatcher(app)) == {}
    sent = [json.loads(m)["headers"]["argsrepr"] for m in broker.lrange("inference", 0, -1)]
    assert sent == [f"[{running}, 1]"]
    plans = sorted(json.loads(m)["headers"]["argsrepr"] for m in broker.lrange("control", 0, -1))
    assert plans == sorted([f"[{running}]", f"[{queued_id}]"])
    with session_scope(session_factory) as s:
        rows = {(r.job_id, r.chunk): (r.owner, r.recoveries) for r in s.scalars(select(JobChunk))}
    assert rows == {
        (running, 0): (None, 0),
        (running, 1): (None, 1),
        (running, 2): (None, 0),
        (running, 3): ("alive:1:t7", 0),
        (cancelled, 0): (None, 0),
        (running, PLAN_CHUNK): (None, 1),
        (queued_id, PLAN_CHUNK): (None, 1),
        (cancelled, PLAN_CHUNK): (None, 0),
        (done_id, PLAN_CHUNK): (None, 0),
    }
    resent = lease(PLAN_CHUNK, "p-resent", job=queued_id)
    assert resent.acquire()  # the plan the sweep sent takes the lease
    assert not lease(PLAN_CHUNK, "p-copy", job=queued_id).acquire()  # and a copy of it waits
    resent.release()
