"""`chunk`: run one chunk of a job's items through the model and write the results.

Reads the chunk's pending items, sends their decoded frames to the job's platform in pipelined
batched requests (`_infer`), checks the outputs, and writes the results in the chunk's one
transaction (`_Writer`), for items still pending only. Each chunk logs one line with its
outcome and seconds per stage (`Stages`). The pipeline and the write: docs/jobs.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from engine.db.jobs import Job, JobItem
from engine.db.models import File, Model, ModelVersion
from engine.db.session import database_errors, session_scope
from engine.errors import ModelHostError
from engine.hosting.contract import NPZ_CONTENT_TYPE, encode_batch, validate_outputs
from engine.hosting.reference import ModelVersionRef
from engine.jobs import results
from engine.jobs.context import WorkerContext
from engine.jobs.media import Frame, MediaError, decode_image, load_video, read_file
from sdk.schemas import (
    PARAMS_BY_KIND,
    AutoAnnotateParams,
    AutotagParams,
    EmbedParams,
    InferenceParams,
)
from sdk.vocabulary import ItemStatus, JobKind, JobStatus, Platform

log = logging.getLogger(__name__)


@dataclass
class _Item:
    item_id: int
    file_id: int
    uri: str
    content_type: str
    frames: list[Frame] = field(default_factory=list)
    outputs: list[results.FrameResult] = field(default_factory=list)
    error: str | None = None


class Stages:
    """Seconds a chunk spent per stage, added from several threads: `fetch` (reading files),
    `decode` (decoding + resizing), `inference` (waiting for the model's answers), `checks`
    (validating them), `write` (the results transaction). Fetch, decode and checks overlap the
    inference, so the stages add up to more than the chunk's wall time."""

    NAMES = ("fetch", "decode", "inference", "checks", "write")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] += seconds

    def describe(self) -> str:
        return ", ".join(f"{name} {self.seconds[name]:.2f}" for name in self.NAMES)


@dataclass(frozen=True)
class _ChunkJob:
    """The job a chunk belongs to, as running the chunk needs it: its typed params, the
    model version and its labels, the platform."""

    job_id: int
    kind: JobKind
    platform: Platform
    params: InferenceParams
    version: ModelVersionRef
    labels: list[str] | None


def _load(session: Session, job_id: int, chunk: int) -> tuple[_ChunkJob | None, list[_Item]]:
    job = session.get(Job, job_id)
    if job is None or job.model_version_id is None:
        return None, []
    rows = session.execute(
        select(JobItem.id, File.id, File.storage_uri, File.content_type)
        .join(File, File.id == JobItem.file_id)
        .where(
            JobItem.job_id == job_id, JobItem.chunk == chunk, JobItem.status == ItemStatus.PENDING
        )
        .order_by(JobItem.id)
    ).all()
    items = [_Item(r[0], r[1], r[2], r[3]) for r in rows]
    if job.cancel_requested:
        _finish(session, job_id, [(i.item_id, ItemStatus.CANCELLED, None) for i in items])
        return None, []
    found = session.execute(
        select(ModelVersion, Model.name, Model.application)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(ModelVersion.id == job.model_version_id)
    ).one()
    version, name, application = found
    ref = ModelVersionRef(
        id=version.id,
        name=name,
        version=version.version,
        application=application,
        bundle_uri=version.bundle_uri,
        sha256=version.sha256,
        embedding_dim=version.embedding_dim,
    )
    kind = JobKind(job.kind)
    params = PARAMS_BY_KIND[kind].model_validate(job.params)
    if not isinstance(params, InferenceParams):
        raise ValueError(f"a {kind} job runs no model")
    return _ChunkJob(job_id, kind, Platform(job.platform), params, ref, version.label_list), items


# Niceness of the chunk's helper threads (decode, output checks). The model host's inference
# keeps every core busy; niced helpers take the cores when inference leaves them idle (its
# single-threaded stretches, the HTTP round trip) instead of slowing it down.
HELPER_NICENESS = 10


def _lower_priority() -> None:
    """Thread initializer: raise this thread's niceness (Linux schedules threads one by one)."""
    # not Linux, or not allowed: the thread runs at normal priority
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HELPER_NICENESS)


def _decode(context: WorkerContext, plan: _ChunkJob, items: list[_Item], stages: Stages) -> None:
    """Fetch and decode `items` (sets `frames`, or `error` for a file that cannot be read)."""
    settings = context.settings
    width, height = plan.params.input_resolution
    for item in items:
        started = time.perf_counter()
        try:
            if item.content_type == "video":  # OpenCV reads as it decodes: one stage
                item.frames = load_video(
                    context.storage, item.uri, (width, height), settings.video_frame_stride
                )
                stages.add("decode", time.perf_counter() - started)
            else:
                data = read_file(context.storage, item.uri)
                fetched = time.perf_counter()
                stages.add("fetch", fetched - started)
                item.frames = decode_image(data, (width, height))
                stages.add("decode", time.perf_counter() - fetched)
            if plan.kind == JobKind.EMBEDDING:
                item.frames = item.frames[:1]  # one vector per file: a video's first sample
        except MediaError as exc:
            item.error = str(exc)


def _accept(
    plan: _ChunkJob,
    batch: list[tuple[_Item, Frame]],
    raw: bytes,
    stages: Stages,
    writer: _Writer | None = None,
) -> None:
    """Validate one request's outputs and attach them to their items, in frame order; hand
    the items whose last frame this was to `writer`."""
    started = time.perf_counter()
    outcomes = validate_outputs(
        plan.version.application,
        raw,
        len(batch),
        embedding_dim=plan.version.embedding_dim,
        num_classes=len(plan.labels) if plan.labels else None,
    )
    for (item, frame), outcome in zip(batch, outcomes, strict=True):
        if outcome.ok:
            item.outputs.append(results.FrameResult(frame, outcome.output))
        else:
            item.error = item.error or f"the model's output was refused: {outcome.error}"
    stages.add("checks", time.perf_counter() - started)
    if writer is not None:
        writer.add([item for item, frame in batch if frame is item.frames[-1]])


def _infer(
    context: WorkerContext,
    plan: _ChunkJob,
    items: list[_Item],
    stages: Stages,
    writer: _Writer | None = None,
) -> None:
    """Decode the items and run their frames through the model, in requests of
    `request_batch_size` frames, pipelined: while the model host runs request i (this thread
    waits on HTTP, the GIL released), worker threads fetch and decode the files of the next
    requests, and another thread validates the outputs of request i-1. Requests go out one at
    a time and in frame order, so every frame gets exactly what the serial loop gave it."""
    settings = context.settings
    params = plan.params
    width, height = params.input_resolution
    parameters: dict[str, Any] = {
        "application": plan.version.application,
        "confidence_threshold": (
            0.0 if isinstance(params, EmbedParams) else params.confidence_threshold
        ),
        "input_resolution": [width, height],
    }
    if isinstance(params, AutoAnnotateParams):
        parameters["prompt"] = [entry.model_dump() for entry in params.prompt]
    platform = context.platform(plan.platform)
    try:
        size = platform.images_per_request(
            width, height, parameters, at_most=min(settings.chunk_size, settings.request_batch_size)
        )
    except ModelHostError as exc:
        _decode(context, plan, items, stages)  # a file's own error comes first
        for item in items:
            item.error = item.error or exc.message
        return
    # files are decoded in groups of `size` (one request's worth of images), at most `ahead`
    # groups beyond the one the next request is waiting for
    groups = [items[start : start + size] for start in range(0, len(items), size)]
    if any(item.uri.startswith("s3://") for item in items):
        context.storage.s3  # noqa: B018 - make the boto3 client here: creating it is not thread-safe
    ahead = max(1, settings.chunk_decode_threads)
    with (
        ThreadPoolExecutor(
            max_workers=settings.chunk_decode_threads,
            thread_name_prefix="chunk-decode",
            initializer=_lower_priority,
        ) as decoders,
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="chunk-accept", initializer=_lower_priority
        ) as acceptor,
    ):
        decoding: deque[Future[None]] = deque()
        accepting: list[Future[None]] = []
        submitted = 0

        def refill() -> None:
            nonlocal submitted
            while submitted < len(groups) and len(decoding) <= ahead:
                decoding.append(decoders.submit(_decode, context, plan, groups[submitted], stages))
                submitted += 1

        def send(batch: list[tuple[_Item, Frame]]) -> None:
            parameters["original_sizes"] = [list(frame.original_size) for _, frame in batch]
            body = encode_batch([frame.array for _, frame in batch], parameters)
            started = time.perf_counter()
            try:
                raw = platform.invoke(plan.version, body, NPZ_CONTENT_TYPE)
            except ModelHostError as exc:
                for item, _ in batch:
                    item.error = item.error or exc.message
                return
            finally:
                stages.add("inference", time.perf_counter() - started)
            # one acceptor thread: outputs are attached in request order (a video's frames
            # may span two requests)
            accepting.append(acceptor.submit(_accept, plan, batch, raw, stages, writer))

        try:
            refill()
            waiting: list[tuple[_Item, Frame]] = []
            for group in groups:
                decoding.popleft().result()
                refill()
                waiting += [
                    (item, frame) for item in group if item.error is None for frame in item.frames
                ]
                while len(waiting) >= size:
                    batch, waiting = waiting[:size], waiting[size:]
                    send(batch)
            if waiting:
                send(waiting)
        finally:
            for future in decoding:
                future.cancel()
            for future in accepting:
                future.result()


def _finish(
    session: Session, job_id: int, transitions: list[tuple[int, ItemStatus, str | None]]
) -> set[int]:
    """Move items out of pending; bump counters; finalize the job. The ids that moved."""
    moved: set[int] = set()
    done = failed = 0
    for item_id, status, error in transitions:
        changed = session.execute(
            update(JobItem)
            .where(JobItem.id == item_id, JobItem.status == ItemStatus.PENDING)
            .values(
                status=status,
                error=error,
                attempts=JobItem.attempts + 1,
                updated_at=func.clock_timestamp(),
            )
            .returning(JobItem.id)
        ).first()
        if changed is not None:
            moved.add(item_id)
            done += status == ItemStatus.DONE
            failed += status == ItemStatus.FAILED
    session.execute(
        update(Job).where(Job.id == job_id).values(done=Job.done + done, failed=Job.failed + failed)
    )
    pending = session.scalar(
        select(func.count()).where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
    )
    if not pending:
        job = session.get(Job, job_id, populate_existing=True)
        assert job is not None
        if job.status == JobStatus.RUNNING:
            job.status = (
                JobStatus.FAILED
                if job.failed and not job.done
                else JobStatus.PARTIALLY_FAILED
                if job.failed
                else JobStatus.SUCCEEDED
            )
            # the clock, not now(): the chunk's transaction began with its first early
            # write, seconds before this
            job.finished_at = func.clock_timestamp()  # type: ignore[assignment]
    return moved


def _transitions(session: Session, plan: _ChunkJob, items: list[_Item]) -> set[int]:
    """Lock the job row, move the items out of pending; the ids that moved."""
    session.execute(select(Job.id).where(Job.id == plan.job_id).with_for_update())
    transitions = [
        (i.item_id, ItemStatus.FAILED if i.error else ItemStatus.DONE, i.error) for i in items
    ]
    return _finish(session, plan.job_id, transitions)


def _write(session: Session, plan: _ChunkJob, items: list[_Item]) -> None:
    """The whole chunk in one go: transitions, then the results of the items that moved."""
    moved = _transitions(session, plan, items)
    _write_results(session, plan, [i for i in items if i.item_id in moved and i.error is None])


def _write_results(session: Session, plan: _ChunkJob, ok: list[_Item]) -> None:
    """Store the results of items the model answered (tags, annotations or vectors)."""
    if not ok:
        return
    params, version_id = plan.params, plan.version.id
    size = params.input_resolution
    if isinstance(params, AutotagParams):
        tags: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for item in ok:
            t, a = results.autotag_rows(
                item.file_id,
                item.outputs,
                labels=plan.labels,
                threshold=params.confidence_threshold,
                input_size=size,
                version_id=version_id,
                job_id=plan.job_id,
            )
            tags += t
            annotations += a
        results.replace_machine_results(
            session,
            file_ids=[i.file_id for i in ok],
            version_id=version_id,
            tags=tags,
            annotations=annotations,
        )
    elif isinstance(params, AutoAnnotateParams):
        rows: list[dict[str, Any]] = []
        for item in ok:
            rows += results.annotation_rows(
                item.file_id,
                item.outputs,
                prompt=params.prompt,
                threshold=params.confidence_threshold,
                annotation_type=params.annotation_type,
                preview=params.preview,
                input_size=size,
                version_id=version_id,
                job_id=plan.job_id,
            )
        results.replace_machine_results(
            session,
            file_ids=[i.file_id for i in ok],
            version_id=version_id,
            tags=[],
            annotations=rows,
            annotation_status="proposed" if params.preview else None,
        )
    else:
        from engine.embeddings.store import write_embeddings

        vectors = {item.file_id: list(item.outputs[0].output.embedding) for item in ok}
        write_embeddings(session=session, version=plan.version, vectors=vectors, job_id=plan.job_id)


class _Writer:
    """The chunk's results transaction, written while the model works on the next requests.

    Items are handed over as soon as their last frame's output is checked, and their results
    go into one open transaction on the writer's own thread (a Session is used by one thread
    at a time). `commit` then locks the job row and moves the items out of pending in the same
    transaction. Results are only ever committed for items that moved: if an item written
    early did not (the job was cancelled meanwhile, or a redelivered copy of this chunk
    finished it first), the transaction is rolled back and `commit` answers False, and the
    chunk is written again the plain way (`_write`)."""

    def __init__(self, context: WorkerContext, plan: _ChunkJob, stages: Stages) -> None:
        self.plan, self.stages = plan, stages
        self.session = context.sessions()
        self.written: set[int] = set()
        self.pending: list[Future[None]] = []
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-write")

    def add(self, items: list[_Item]) -> None:
        ok = [item for item in items if item.error is None]
        if ok:
            self.pending.append(self.thread.submit(self._write, ok))

    def _write(self, ok: list[_Item]) -> None:
        started = time.perf_counter()
        with database_errors():
            _write_results(self.session, self.plan, ok)
        self.written.update(item.item_id for item in ok)
        self.stages.add("write", time.perf_counter() - started)

    def commit(self, items: list[_Item]) -> bool:
        """Wait for the early writes, then finish the chunk; False: rolled back."""
        for future in self.pending:
            future.result()  # an error writing results fails the chunk (the task retries)
        return self.thread.submit(self._commit, items).result()

    def _commit(self, items: list[_Item]) -> bool:
        started = time.perf_counter()
        with database_errors():
            moved = _transitions(self.session, self.plan, items)
            if not self.written <= moved:
                self.session.rollback()
                return False
            _write_results(
                self.session,
                self.plan,
                [  # none, unless a frame went missing
                    i
                    for i in items
                    if i.item_id in moved and i.error is None and i.item_id not in self.written
                ],
            )
            self.session.commit()
        self.stages.add("write", time.perf_counter() - started)
        return True

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.thread.submit(self.session.close).result()  # rolls back what was not committed
        self.thread.shutdown()


def run_chunk(context: WorkerContext, job_id: int, chunk: int) -> None:
    with session_scope(context.sessions) as session:
        plan, items = _load(session, job_id, chunk)
    if plan is None or not items:
        return
    started = time.perf_counter()
    warning = context.platform(plan.platform).warning
    if warning:
        with session_scope(context.sessions) as session:
            _add_warning(session, job_id, warning)
    stages = Stages()
    writer = _Writer(context, plan, stages)
    try:
        _infer(context, plan, items, stages, writer)
        committed = writer.commit(items)
    finally:
        writer.close()
    if not committed:
        writing = time.perf_counter()
        with session_scope(context.sessions) as session:
            _write(session, plan, items)
        stages.add("write", time.perf_counter() - writing)
    by_status: dict[str, int] = defaultdict(int)
    for item in items:
        by_status[(ItemStatus.FAILED if item.error else ItemStatus.DONE).value] += 1
    log.info(
        "job %d chunk %d: %s in %.2f s (%s)",
        job_id,
        chunk,
        dict(by_status),
        time.perf_counter() - started,
        stages.describe(),
    )


def _add_warning(session: Session, job_id: int, warning: str) -> None:
    """Add `warning` to the job's warnings once, whichever of its chunks ran first."""
    session.execute(
        text(
            "UPDATE jobs SET warnings = warnings || jsonb_build_array(CAST(:w AS text)) "
            "WHERE id = :id AND NOT warnings @> jsonb_build_array(CAST(:w AS text))"
        ),
        {"w": warning, "id": job_id},
    )


def fail_chunk(context: WorkerContext, job_id: int, chunk: int, reason: str) -> None:
    """Fail the chunk's pending items with `reason` (an error the chunk could not get past)."""
    with session_scope(context.sessions) as session:
        session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
        ids = list(
            session.scalars(
                select(JobItem.id).where(
                    JobItem.job_id == job_id,
                    JobItem.chunk == chunk,
                    JobItem.status == ItemStatus.PENDING,
                )
            )
        )
        _finish(session, job_id, [(item_id, ItemStatus.FAILED, reason) for item_id in ids])
