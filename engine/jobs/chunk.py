"""`chunk`: run one chunk of a job's items through the model and write the results.

1. read the chunk's pending items (none, or the job cancelled: nothing to do);
2. outside any transaction: fetch and decode the files, one batched request per
   `request_batch_size` frames to the job's platform (on `aws`, fewer frames per request when
   that many would exceed METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES: `_request_size`), validate the
   outputs item by item. The requests are pipelined (`_infer`): the next request's files are
   fetched and decoded, and the previous request's outputs validated, while the model host
   runs the current one;
3. one transaction: lock the job row, move the items pending -> done/failed (only the ones
   still pending: a redelivered chunk counts nothing twice and writes nothing twice), write
   their results with upserts, bump the counters, and set the final status when no item is
   left pending.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.db.analysis import Job, JobItem
from engine.db.models import File, Model, ModelVersion
from engine.db.session import session_scope
from engine.errors import ModelHostError
from engine.jobs import results
from engine.jobs.context import WorkerContext
from engine.jobs.media import Frame, MediaError, load_frames
from engine.jobs.platforms.base import InferencePlatform, ModelVersionRef
from engine.jobs.platforms.sagemaker_naming import DEFAULT_PARAMETERS_CHARS
from engine.registry.contract import NPZ_CONTENT_TYPE, encode_batch, validate_outputs

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


@dataclass(frozen=True)
class _Plan:
    job_id: int
    kind: str
    platform: str
    params: dict[str, Any]
    version: ModelVersionRef
    labels: list[str] | None


def _load(session: Session, job_id: int, chunk: int) -> tuple[_Plan | None, list[_Item]]:
    job = session.get(Job, job_id)
    if job is None or job.model_version_id is None:
        return None, []
    rows = session.execute(
        select(JobItem.id, File.id, File.storage_uri, File.content_type)
        .join(File, File.id == JobItem.file_id)
        .where(JobItem.job_id == job_id, JobItem.chunk == chunk, JobItem.status == "pending")
        .order_by(JobItem.id)).all()
    items = [_Item(r[0], r[1], r[2], r[3]) for r in rows]
    if job.cancel_requested:
        _finish(session, job_id, [(i.item_id, "cancelled", None) for i in items])
        return None, []
    found = session.execute(select(ModelVersion, Model.name, Model.application)
                            .join(Model, Model.id == ModelVersion.model_id)
                            .where(ModelVersion.id == job.model_version_id)).one()
    version, name, application = found
    ref = ModelVersionRef(id=version.id, name=name, version=version.version,
                          application=application, bundle_uri=version.bundle_uri,
                          sha256=version.sha256, embedding_dim=version.embedding_dim)
    return _Plan(job_id, job.kind, job.platform, dict(job.params), ref,
                 version.label_list), items


def _request_size(platform: InferencePlatform, chunk_size: int, width: int, height: int,
                  parameters: dict[str, Any]) -> int:
    """Frames per request: the whole chunk, or on a platform with a request size limit (`aws`:
    `max_batch_images`) as many as fit. Raises EndpointPayloadTooLarge when not one does."""
    limit = getattr(platform, "max_batch_images", None)
    if limit is None:
        return chunk_size
    chars = max(DEFAULT_PARAMETERS_CHARS, len(json.dumps(parameters)))
    return max(1, min(chunk_size, int(limit(width, height, parameters_chars=chars))))


def _decode(context: WorkerContext, plan: _Plan, items: list[_Item]) -> None:
    """Fetch and decode `items` (sets `frames`, or `error` for a file that cannot be read)."""
    settings = context.settings
    width, height = plan.params["input_resolution"]
    for item in items:
        try:
            item.frames = load_frames(context.storage, item.uri, item.content_type,
                                      (width, height), settings.video_frame_stride)
            if plan.kind == "embedding":
                item.frames = item.frames[:1]  # one vector per file: a video's first sample
        except MediaError as exc:
            item.error = str(exc)


def _accept(plan: _Plan, batch: list[tuple[_Item, Frame]], raw: bytes) -> None:
    """Validate one request's outputs and attach them to their items, in frame order."""
    outcomes = validate_outputs(plan.version.application, raw, len(batch),
                                embedding_dim=plan.version.embedding_dim,
                                num_classes=len(plan.labels) if plan.labels else None)
    for (item, frame), outcome in zip(batch, outcomes, strict=True):
        if outcome.ok:
            item.outputs.append(results.FrameResult(frame, outcome.output))
        else:
            item.error = item.error or f"the model's output was refused: {outcome.error}"


def _infer(context: WorkerContext, plan: _Plan, items: list[_Item]) -> None:
    """Decode the items and run their frames through the model, in requests of
    `request_batch_size` frames, pipelined: while the model host runs request i (this thread
    waits on HTTP, the GIL released), worker threads fetch and decode the files of the next
    requests, and another thread validates the outputs of request i-1. Requests go out one at
    a time and in frame order, so every frame gets exactly what the serial loop gave it."""
    settings = context.settings
    width, height = plan.params["input_resolution"]
    parameters: dict[str, Any] = {
        "application": plan.version.application,
        "confidence_threshold": plan.params.get("confidence_threshold", 0.0),
        "input_resolution": [width, height],
    }
    if plan.kind == "auto_annotation":
        parameters["prompt"] = plan.params["prompt"]
    platform = context.platform(plan.platform)
    try:
        size = _request_size(platform, min(settings.chunk_size, settings.request_batch_size),
                             width, height, parameters)
    except ModelHostError as exc:
        _decode(context, plan, items)  # a file's own error comes first, as it always has
        for item in items:
            item.error = item.error or exc.message
        return
    # files are decoded in groups of `size` (one request's worth of images), at most `ahead`
    # groups beyond the one the next request is waiting for
    groups = [items[start:start + size] for start in range(0, len(items), size)]
    if any(item.uri.startswith("s3://") for item in items):
        context.storage.s3  # noqa: B018 - make the boto3 client here: creating it is not thread-safe
    ahead = max(1, settings.chunk_decode_threads)
    with ThreadPoolExecutor(max_workers=settings.chunk_decode_threads,
                            thread_name_prefix="chunk-decode") as decoders, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-accept") as acceptor:
        decoding: deque[Future[None]] = deque()
        accepting: list[Future[None]] = []
        submitted = 0

        def refill() -> None:
            nonlocal submitted
            while submitted < len(groups) and len(decoding) <= ahead:
                decoding.append(decoders.submit(_decode, context, plan, groups[submitted]))
                submitted += 1

        def send(batch: list[tuple[_Item, Frame]]) -> None:
            parameters["original_sizes"] = [list(frame.original_size) for _, frame in batch]
            body = encode_batch([frame.array for _, frame in batch], parameters)
            try:
                raw = platform.invoke(plan.version, body, NPZ_CONTENT_TYPE)
            except ModelHostError as exc:
                for item, _ in batch:
                    item.error = item.error or exc.message
                return
            # one acceptor thread: outputs are attached in request order (a video's frames
            # may span two requests)
            accepting.append(acceptor.submit(_accept, plan, batch, raw))

        try:
            refill()
            waiting: list[tuple[_Item, Frame]] = []
            for group in groups:
                decoding.popleft().result()
                refill()
                waiting += [(item, frame) for item in group if item.error is None
                            for frame in item.frames]
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


def _finish(session: Session, job_id: int, transitions: list[tuple[int, str, str | None]]
            ) -> set[int]:
    """Move items out of pending; bump counters; finalize the job. The ids that moved."""
    moved: set[int] = set()
    done = failed = 0
    for item_id, status, error in transitions:
        changed = session.execute(
            update(JobItem).where(JobItem.id == item_id, JobItem.status == "pending")
            .values(status=status, error=error, attempts=JobItem.attempts + 1,
                    updated_at=func.now()).returning(JobItem.id)).first()
        if changed is not None:
            moved.add(item_id)
            done += status == "done"
            failed += status == "failed"
    session.execute(update(Job).where(Job.id == job_id)
                    .values(done=Job.done + done, failed=Job.failed + failed))
    pending = session.scalar(select(func.count()).where(JobItem.job_id == job_id,
                                                        JobItem.status == "pending"))
    if not pending:
        job = session.get(Job, job_id, populate_existing=True)
        assert job is not None
        if job.status == "running":
            job.status = ("failed" if job.failed and not job.done else
                          "partially_failed" if job.failed else "succeeded")
            job.finished_at = func.now()  # type: ignore[assignment]
    return moved


def _write(session: Session, plan: _Plan, items: list[_Item]) -> None:
    session.execute(select(Job.id).where(Job.id == plan.job_id).with_for_update())
    transitions = [(i.item_id, "failed" if i.error else "done", i.error) for i in items]
    moved = _finish(session, plan.job_id, transitions)
    ok = [i for i in items if i.item_id in moved and i.error is None]
    if not ok:
        return
    params, version_id = plan.params, plan.version.id
    size = tuple(params["input_resolution"])
    if plan.kind == "autotagging":
        tags: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for item in ok:
            t, a = results.autotag_rows(item.file_id, item.outputs, labels=plan.labels,
                                        threshold=params["confidence_threshold"],
                                        input_size=size,  # type: ignore[arg-type]
                                        version_id=version_id, job_id=plan.job_id)
            tags += t
            annotations += a
        results.replace_machine_results(session, file_ids=[i.file_id for i in ok],
                                        version_id=version_id, tags=tags,
                                        annotations=annotations)
    elif plan.kind == "auto_annotation":
        rows: list[dict[str, Any]] = []
        for item in ok:
            rows += results.annotation_rows(
                item.file_id, item.outputs, prompt=params["prompt"],
                threshold=params["confidence_threshold"],
                annotation_type=params["annotation_type"], preview=params["preview"],
                input_size=size, version_id=version_id, job_id=plan.job_id)  # type: ignore[arg-type]
        results.replace_machine_results(
            session, file_ids=[i.file_id for i in ok], version_id=version_id, tags=[],
            annotations=rows, annotation_status="proposed" if params["preview"] else None)
    elif plan.kind == "embedding":
        from engine.embeddings.store import write_embeddings

        vectors = {item.file_id: list(item.outputs[0].output.embedding) for item in ok}
        write_embeddings(session=session, version=plan.version, vectors=vectors,
                         job_id=plan.job_id)


def run_chunk(context: WorkerContext, job_id: int, chunk: int) -> None:
    with session_scope(context.sessions) as session:
        plan, items = _load(session, job_id, chunk)
    if plan is None or not items:
        return
    _infer(context, plan, items)
    by_status: dict[str, int] = defaultdict(int)
    for item in items:
        by_status["failed" if item.error else "done"] += 1
    with session_scope(context.sessions) as session:
        _write(session, plan, items)
    log.info("job %d chunk %d: %s", job_id, chunk, dict(by_status))


def fail_chunk(context: WorkerContext, job_id: int, chunk: int, reason: str) -> None:
    """Fail the chunk's pending items with `reason` (an error the chunk could not get past)."""
    with session_scope(context.sessions) as session:
        session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
        ids = list(session.scalars(select(JobItem.id).where(
            JobItem.job_id == job_id, JobItem.chunk == chunk, JobItem.status == "pending")))
        _finish(session, job_id, [(item_id, "failed", reason) for item_id in ids])
