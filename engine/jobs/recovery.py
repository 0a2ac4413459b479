"""Recovering the work of workers that died: chunk leases, the recovery sweep, resumable chunks.

A chunk (and a job's planning) runs under a lease renewed by a heartbeat; each worker's sweep
(`recover_lapsed`, every METALAKE_RECOVERY_INTERVAL seconds) sends again the work whose lease
lapsed, and `resumable_chunks` is what `resume_job` sends again. Why leases, and why sending a
chunk twice is safe: docs/jobs.md, "Inside a worker".
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta
from typing import Any

import psutil
from sqlalchemy import create_engine, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from engine.config import Settings
from engine.db.jobs import Job, JobChunk, JobItem
from engine.db.session import make_session_factory, session_scope, sqlalchemy_url
from engine.embeddings.indexing import request_builds
from engine.jobs.dispatch import Dispatcher
from sdk.vocabulary import ItemStatus, JobStatus

log = logging.getLogger(__name__)
SWEEP_LIMIT = 500  # lapsed leases handled per sweep (the next sweep takes the rest)
PLAN_CHUNK = -1  # the `job_chunks` row of a job's planning (chunks count from 0)


def owner_id(pid: int, task_id: str) -> str:
    """The `owner` of a lease: `host:pid:task id`."""
    return f"{socket.gethostname()}:{pid}:{task_id}"


def _gone_from_this_host(owner: str) -> bool:
    """Whether `owner` names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        status: str = psutil.Process(int(pid)).status()
    except psutil.NoSuchProcess:
        return True
    return bool(status == psutil.STATUS_ZOMBIE)


class ChunkLease:
    """One chunk task's lease: `acquire` (and renew on a thread), then `release` or `keep`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        job_id: int,
        chunk: int,
        pid: int,
        task_id: str,
        seconds: float,
    ) -> None:
        self._sessions = sessions
        self.job_id, self.chunk, self.seconds = job_id, chunk, seconds
        self._task_suffix = f":{task_id}"
        self._retry_owner = f"retry:{task_id}"
        self.owner = owner_id(pid, task_id)
        self.held = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _key(self) -> list[Any]:
        return [JobChunk.job_id == self.job_id, JobChunk.chunk == self.chunk]

    def acquire(self) -> bool:
        """Take the lease unless another task holds a live one; start renewing it."""
        expires = func.now() + timedelta(seconds=self.seconds)
        with session_scope(self._sessions) as session:
            if session.get(Job, self.job_id) is None:
                return False
            statement = pg_insert(JobChunk).values(
                job_id=self.job_id,
                chunk=self.chunk,
                owner=self.owner,
                lease_expires_at=expires,
                runs=1,
                updated_at=func.now(),
            )
            statement = statement.on_conflict_do_update(
                index_elements=[JobChunk.job_id, JobChunk.chunk],
                set_={
                    "owner": statement.excluded.owner,
                    "lease_expires_at": statement.excluded.lease_expires_at,
                    "runs": JobChunk.runs + 1,
                    "updated_at": func.now(),
                },
                where=or_(
                    JobChunk.owner.is_(None),
                    JobChunk.lease_expires_at < func.now(),
                    JobChunk.owner.in_([self._retry_owner, self.owner]),
                ),
            )
            self.held = session.execute(statement.returning(JobChunk.job_id)).first() is not None
            if not self.held:  # requeued after our pool process died: take it over now
                holder = session.scalar(select(JobChunk.owner).where(*self._key()))
                if (
                    holder is not None
                    and holder.endswith(self._task_suffix)
                    and _gone_from_this_host(holder)
                ):
                    self.held = (
                        session.execute(
                            update(JobChunk)
                            .where(*self._key(), JobChunk.owner == holder)
                            .values(
                                owner=self.owner,
                                runs=JobChunk.runs + 1,
                                updated_at=func.now(),
                                lease_expires_at=expires,
                            )
                            .returning(JobChunk.job_id)
                        ).first()
                        is not None
                    )
        if self.held:
            self._heartbeat = threading.Thread(
                target=self._renew_until_stopped,
                daemon=True,
                name=f"lease-{self.job_id}-{self.chunk}",
            )
            self._heartbeat.start()
        return self.held

    def _renew_until_stopped(self) -> None:
        lost = False
        while not self._stop.wait(self.seconds / 3):
            try:
                with session_scope(self._sessions) as session:
                    renewed = session.execute(
                        update(JobChunk)
                        .where(*self._key(), JobChunk.owner == self.owner)
                        .values(
                            lease_expires_at=func.now() + timedelta(seconds=self.seconds),
                            updated_at=func.now(),
                        )
                        .returning(JobChunk.job_id)
                    ).first()
            except Exception as exc:  # the database is away: the lease may lapse; retry
                log.warning(
                    "job %d chunk %d: could not renew the lease: %s", self.job_id, self.chunk, exc
                )
                continue
            if renewed is None and not lost:
                lost = True  # taken over after it lapsed; our write stays safe
                log.warning(
                    "job %d chunk %d: the lease lapsed and another worker took the "
                    "chunk; both runs write each item once",
                    self.job_id,
                    self.chunk,
                )

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(self.seconds)  # not forever: a renewal may hang on the network
            self._heartbeat = None

    def _update(self, **values: Any) -> None:
        try:
            with session_scope(self._sessions) as session:
                session.execute(
                    update(JobChunk)
                    .where(*self._key(), JobChunk.owner == self.owner)
                    .values(updated_at=func.now(), **values)
                )
        except Exception as exc:  # unreleased, the lease lapses and the sweep takes over
            log.warning(
                "job %d chunk %d: could not update the lease: %s", self.job_id, self.chunk, exc
            )

    def keep(self, seconds: float) -> None:
        """Stop renewing, and leave the lease to this task's retry for `seconds`."""
        if self.held:
            self._stop_renewing()
            self._update(
                owner=self._retry_owner, lease_expires_at=func.now() + timedelta(seconds=seconds)
            )
            self.held = False

    def release(self) -> None:
        if self.held:
            self._stop_renewing()
            self._update(owner=None, lease_expires_at=None)
            self.held = False


def recover_lapsed(
    session: Session, dispatcher: Dispatcher, *, limit: int = SWEEP_LIMIT
) -> dict[int, list[int]]:
    """Send again the chunks of running jobs whose lease lapsed and that have pending items,
    and the plan of unfinished jobs whose plan lease lapsed (as chunk `PLAN_CHUNK`); clear
    every lapsed lease it looks at. What was sent, by job."""
    lapsed = session.execute(
        select(JobChunk.job_id, JobChunk.chunk)
        .where(JobChunk.owner.is_not(None), JobChunk.lease_expires_at < func.now())
        .order_by(JobChunk.job_id, JobChunk.chunk)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not lapsed:
        return {}
    keys = [(row.job_id, row.chunk) for row in lapsed]
    planning = [job for job, chunk in keys if chunk == PLAN_CHUNK]
    plans = (
        list(
            session.scalars(
                select(Job.id)
                .where(
                    Job.id.in_(planning),
                    Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
                    Job.cancel_requested.is_(False),
                )
                .order_by(Job.id)
            )
        )
        if planning
        else []
    )
    pending = session.execute(
        select(JobItem.job_id, JobItem.chunk)
        .distinct()
        .join(Job, Job.id == JobItem.job_id)
        .where(
            tuple_(JobItem.job_id, JobItem.chunk).in_(keys),
            JobItem.status == ItemStatus.PENDING,
            Job.status == JobStatus.RUNNING,
            Job.cancel_requested.is_(False),
        )
    ).all()
    resend: dict[int, list[int]] = {}
    for job_id, chunk in sorted((row.job_id, row.chunk) for row in pending):
        resend.setdefault(job_id, []).append(chunk)
    session.execute(
        update(JobChunk)
        .where(tuple_(JobChunk.job_id, JobChunk.chunk).in_(keys))
        .values(owner=None, lease_expires_at=None, updated_at=func.now())
    )
    recovered = [(row.job_id, row.chunk) for row in pending] + [(job, PLAN_CHUNK) for job in plans]
    if recovered:
        session.execute(
            update(JobChunk)
            .where(tuple_(JobChunk.job_id, JobChunk.chunk).in_(recovered))
            .values(recoveries=JobChunk.recoveries + 1)
        )
    sent = {job_id: [PLAN_CHUNK] for job_id in plans}
    for job_id in plans:  # inside the transaction: no broker, no commit
        dispatcher.plan(job_id)
        log.warning(
            "job %d: the lease of its planning lapsed (its worker died, or it could "
            "not send the chunks); planned again",
            job_id,
        )
    for job_id, chunks in resend.items():
        dispatcher.chunks(job_id, chunks)
        log.warning(
            "job %d: the lease of chunk(s) %s lapsed (their worker died or lost the "
            "database); sent again",
            job_id,
            chunks,
        )
        sent.setdefault(job_id, []).extend(chunks)
    return dict(sorted(sent.items()))


def resumable_chunks(session: Session, job_id: int) -> list[int]:
    """The job's chunks that have pending items and no live lease (none is running them)."""
    running = select(JobChunk.chunk).where(
        JobChunk.job_id == job_id,
        JobChunk.owner.is_not(None),
        JobChunk.lease_expires_at >= func.now(),
    )
    return list(
        session.scalars(
            select(JobItem.chunk)
            .distinct()
            .where(
                JobItem.job_id == job_id,
                JobItem.status == ItemStatus.PENDING,
                JobItem.chunk.not_in(running),
            )
            .order_by(JobItem.chunk)
        )
    )


class RecoverySweeper:
    """Runs `recover_lapsed`, then `indexing.request_builds` (spaces whose HNSW index is due),
    on a daemon thread of a worker's main process: at start, then
    every `settings.recovery_interval` seconds, on its own connections (none kept between
    sweeps, so nothing is shared with pool processes forked later)."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        if not settings.database_url:
            raise ValueError("the recovery sweep needs DATABASE_URL")
        self._url = settings.database_url
        self._settings = settings
        self._interval = settings.recovery_interval
        self._dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chunk-recovery")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        engine = create_engine(sqlalchemy_url(self._url), poolclass=NullPool)
        sessions = make_session_factory(engine)
        try:
            while True:
                try:
                    with session_scope(sessions) as session:
                        recover_lapsed(session, self._dispatcher)
                except Exception as exc:  # the sweep must survive; the next one retries
                    log.warning("chunk recovery sweep failed: %s", exc)
                try:
                    with session_scope(sessions) as session:
                        request_builds(
                            session,
                            self._dispatcher,
                            quiet_seconds=self._settings.index_quiet_seconds,
                            growth=self._settings.index_rebuild_growth,
                            min_vectors=self._settings.index_min_vectors,
                        )
                except Exception as exc:
                    log.warning("index build sweep failed: %s", exc)
                if self._stop.wait(self._interval):
                    return
        finally:
            engine.dispose()
