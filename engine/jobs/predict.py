"""One image, one answer: a few images through a registered detection model, now.

The API never runs a model: `predict_images` puts the images in Redis, sends a `predict` task
to the inference queue and waits (BLPOP) on a Redis list the task answers on; a worker's warm
model host runs them (`answer_prediction`). No worker taking the task in time is a 503, a
worker not answering in time a 504. The answer's boxes are in pixels of the original images.
How and why: docs/predict.md.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import Model
from engine.db.session import session_scope
from engine.errors import (
    EngineError,
    InvalidInput,
    ModelHostError,
    NoWorkerAvailable,
    PredictionTimeout,
    ServiceUnavailable,
    UnreadableFile,
)
from engine.hosting.contract import NPZ_CONTENT_TYPE, TagPrediction, encode_batch, validate_outputs
from engine.hosting.reference import ModelVersionRef
from engine.jobs.celery_app import create_celery
from engine.jobs.context import WorkerContext, worker_context
from engine.jobs.media import Frame, MediaError, decode_image
from engine.jobs.queues import INFERENCE_QUEUE
from engine.lake.probe import image_size
from engine.registry.store import resolve_version
from sdk.schemas import MAX_RESOLUTION
from sdk.schemas_predict import Detection
from sdk.vocabulary import Application, Platform

log = logging.getLogger(__name__)

PREDICT_TASK = "metalake.predict"
DEFAULT_RESOLUTION = 640  # the side of the square the images are resized to for the model
MAX_IMAGES = 64  # images one call may carry (a chunk's most)
_PREFIX = "metalake:predict:"
_KEEP = 60  # seconds the request's keys outlive its timeout


@dataclass(frozen=True)
class PredictionResult:
    """What a model found in each image, with the version that ran and the images' sizes."""

    model: str
    version: int
    sizes: list[tuple[int, int]]
    detections: list[list[Detection]]


def predict_images(
    settings: Settings,
    model_name: str,
    images: Sequence[bytes],
    *,
    confidence_threshold: float,
    input_resolution: int | None = None,
    timeout: float = 100.0,
) -> list[list[Detection]]:
    """The detections of `model_name` (an autotagging model: `name` or `name@N`) in each of
    `images` (encoded image files), in pixels of each original image."""
    return run_prediction(
        settings,
        model_name,
        images,
        confidence_threshold=confidence_threshold,
        input_resolution=input_resolution,
        timeout=timeout,
    ).detections


def run_prediction(
    settings: Settings,
    model_name: str,
    images: Sequence[bytes],
    *,
    confidence_threshold: float,
    input_resolution: int | None = None,
    timeout: float = 100.0,
) -> PredictionResult:
    """`predict_images`, with the model version that answered and the images' sizes."""
    resolution = check_parameters(confidence_threshold, input_resolution)
    if not images:
        raise InvalidInput("Send at least one image to predict on.")
    if len(images) > MAX_IMAGES:
        raise InvalidInput(
            f"{len(images)} images in one prediction; send at most {MAX_IMAGES} per call."
        )
    for index, data in enumerate(images):
        check_image(settings, data, where=f"image {index}" if len(images) > 1 else "the image")
    if not settings.redis_url:
        raise ServiceUnavailable("The engine has no REDIS_URL: start it with `metalake up`.")
    request_id = uuid.uuid4().hex
    keys = _Keys(request_id)
    request = {
        "model": model_name,
        "confidence_threshold": confidence_threshold,
        "input_resolution": resolution,
        "deadline": time.time() + timeout,
    }
    # the wait below must outlast the client's own read timeout (5 s by default)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout + 10)
    try:
        try:
            with client.pipeline() as pipe:
                pipe.set(keys.request, json.dumps(request), ex=int(timeout) + _KEEP)
                pipe.rpush(keys.images, *images)
                pipe.expire(keys.images, int(timeout) + _KEEP)
                pipe.execute()
            _send(settings, request_id, timeout)
            popped = client.blpop([keys.answer], timeout=max(timeout, 1.0))
            if popped is None:
                taken = bool(client.exists(keys.taken))
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"The broker (Redis) is unavailable: {exc}") from exc
        finally:
            _forget(client, keys)
    finally:
        client.close()
    if popped is None:
        if taken:
            raise PredictionTimeout(
                f"A worker took the prediction but gave no answer within {timeout:g} s; a model "
                "host starting for the first time may install its environment first. Retry.",
                timeout=timeout,
            )
        raise NoWorkerAvailable(timeout=timeout)
    return _result(json.loads(popped[1]))


def check_parameters(confidence_threshold: float, input_resolution: int | None) -> int:
    """The resolution the images go to the model at; raises `InvalidInput` naming a bad one."""
    if not 0.0 <= confidence_threshold <= 1.0:  # also refuses NaN
        raise InvalidInput(
            f"confidence_threshold must be a number between 0 and 1; got {confidence_threshold}.",
            field="confidence_threshold",
        )
    resolution = DEFAULT_RESOLUTION if input_resolution is None else input_resolution
    if not 32 <= resolution <= MAX_RESOLUTION:
        raise InvalidInput(
            f"input_resolution must be a whole number of pixels between 32 and {MAX_RESOLUTION} "
            f"(the side of the square the model sees, e.g. 640); got {resolution}.",
            field="input_resolution",
        )
    return resolution


def check_image(settings: Settings, data: bytes, *, where: str = "the image") -> tuple[int, int]:
    """(width, height) as displayed of the encoded image `data`; `UnreadableFile` if it is none."""
    if not data:
        raise UnreadableFile(f"{where} is empty (0 bytes); send a JPEG, PNG or other image file.")
    try:
        return image_size(io.BytesIO(data), max_pixels=settings.max_image_pixels)
    except UnreadableFile as exc:
        raise UnreadableFile(f"{where} is {exc.reason}; send a JPEG, PNG or other image.") from exc


def _send(settings: Settings, request_id: str, timeout: float) -> None:
    app = create_celery(settings)
    try:
        app.send_task(PREDICT_TASK, args=[request_id], queue=INFERENCE_QUEUE, expires=timeout)
    except Exception as exc:  # kombu's errors vary by transport
        raise ServiceUnavailable(f"The prediction could not be queued: {exc}") from exc
    finally:
        app.close()


def _forget(client: redis.Redis, keys: _Keys) -> None:
    """Drop the request: a worker taking it late finds nothing to do."""
    try:
        client.delete(keys.request, keys.images, keys.answer, keys.taken)
    except redis.RedisError:
        log.warning("prediction %s: its keys are left to expire", keys.request_id)


def _result(answer: dict[str, Any]) -> PredictionResult:
    if "error" in answer:
        raise _error(answer["error"])
    return PredictionResult(
        model=answer["model"],
        version=answer["version"],
        sizes=[(w, h) for w, h in answer["sizes"]],
        detections=[[Detection.model_validate(d) for d in image] for image in answer["detections"]],
    )


def _error(body: dict[str, Any]) -> EngineError:
    """The worker's error as the engine error of its code (its base class by status, else)."""
    classes = _error_classes()
    chosen = classes.get(body.get("code", ""))
    message, details = body.get("message"), body.get("details") or {}
    if chosen is not None:
        try:
            return chosen(message, **details)
        except TypeError:
            pass
    status = int(body.get("status", 502))
    base: type[EngineError] = {400: InvalidInput, 503: ServiceUnavailable}.get(
        status, ModelHostError
    )
    return base(message, **details)


def _error_classes() -> dict[str, type[EngineError]]:
    found: dict[str, type[EngineError]] = {}
    pending: list[type[EngineError]] = [EngineError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


@dataclass(frozen=True)
class _Keys:
    request_id: str

    @property
    def request(self) -> str:
        return f"{_PREFIX}{self.request_id}:request"

    @property
    def images(self) -> str:
        return f"{_PREFIX}{self.request_id}:images"

    @property
    def answer(self) -> str:
        return f"{_PREFIX}{self.request_id}:answer"

    @property
    def taken(self) -> str:
        return f"{_PREFIX}{self.request_id}:taken"


# -- the worker's side -------------------------------------------------------------------------
def register_predict_task(app: Celery) -> None:
    """Register the `predict` task (inference queue) on a worker's Celery app."""

    @app.task(name=PREDICT_TASK, ignore_result=True)  # type: ignore[untyped-decorator, misc]
    def predict(request_id: str) -> None:
        answer_prediction(worker_context(app), request_id)


def answer_prediction(context: WorkerContext, request_id: str) -> None:
    """Run the request's images through its model and push the answer (or the error)."""
    settings = context.settings
    assert settings.redis_url is not None  # a worker runs on its broker
    keys = _Keys(request_id)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.set(keys.taken, 1, ex=3600)
        raw_request = client.get(keys.request)
        images: list[bytes] = client.lrange(keys.images, 0, -1)  # type: ignore[assignment]
        if raw_request is None or not images:
            log.info("prediction %s: gone (answered late or abandoned); nothing to do", request_id)
            client.delete(keys.taken)
            return
        request = json.loads(raw_request)
        remaining = request["deadline"] - time.time()
        if remaining <= 0:
            return
        try:
            answer = _predict(context, request, images)
        except EngineError as exc:
            answer = _error_answer(exc)
        except Exception:  # answered rather than left to time out; the traceback stays here
            log.exception("prediction %s failed", request_id)
            answer = _error_answer(
                ModelHostError("The worker could not run the prediction; see the worker's log.")
            )
        with client.pipeline() as pipe:
            pipe.rpush(keys.answer, json.dumps(answer))
            pipe.expire(keys.answer, int(remaining) + _KEEP)
            pipe.execute()
    finally:
        client.close()


def _error_answer(error: EngineError) -> dict[str, Any]:
    return {
        "error": {
            "status": error.status_code,
            "code": error.code,
            "message": error.message,
            "details": error.details,
        }
    }


def _predict(
    context: WorkerContext, request: dict[str, Any], images: list[bytes]
) -> dict[str, Any]:
    with session_scope(context.sessions) as session:
        version, labels = predict_model(session, request["model"])
    side = int(request["input_resolution"])
    threshold = float(request["confidence_threshold"])
    frames: list[Frame] = []
    for index, data in enumerate(images):
        try:
            frames.extend(decode_image(data, (side, side)))
        except MediaError as exc:
            raise UnreadableFile(f"image {index}: {exc}") from exc
    parameters: dict[str, Any] = {
        "application": version.application,
        "confidence_threshold": threshold,
        "input_resolution": [side, side],
    }
    platform = context.platform(Platform(context.settings.inference_platform))
    size = platform.images_per_request(
        side, side, parameters, at_most=context.settings.request_batch_size
    )
    detections: list[list[dict[str, Any]]] = []
    for start in range(0, len(frames), size):
        batch = frames[start : start + size]
        parameters["original_sizes"] = [list(frame.original_size) for frame in batch]
        raw = platform.invoke(
            version, encode_batch([f.array for f in batch], parameters), NPZ_CONTENT_TYPE
        )
        outcomes = validate_outputs(
            version.application, raw, len(batch), num_classes=len(labels) if labels else None
        )
        for frame, outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome.output, TagPrediction):
                raise ModelHostError(
                    f"The model's output was refused: {outcome.error}", version_key=version.key
                )
            found = detections_in(outcome.output, frame, (side, side), labels, threshold)
            detections.append([d.model_dump(mode="json") for d in found])
    return {
        "model": version.name,
        "version": version.version,
        "sizes": [list(frame.original_size) for frame in frames],
        "detections": detections,
    }


def predict_model(session: Session, reference: str) -> tuple[ModelVersionRef, list[str] | None]:
    """The version `reference` names and its labels; `ModelNotFound`, or `InvalidInput` for a
    model that is not a detection (autotagging) model."""
    name = reference.partition("@")[0]
    application = session.scalar(select(Model.application).where(Model.name == name))
    if application is not None and application != Application.AUTOTAGGING:
        raise InvalidInput(
            f"{name!r} is an {application} model; predict runs detection (autotagging) models. "
            "Run embedding and text-prompt models as jobs (docs/jobs.md).",
            model=name,
            application=application,
        )
    version = resolve_version(session, reference, Application.AUTOTAGGING)
    ref = ModelVersionRef(
        id=version.id,
        name=session.scalar(select(Model.name).where(Model.id == version.model_id)) or name,
        version=version.version,
        application=Application.AUTOTAGGING,
        bundle_uri=version.bundle_uri,
        sha256=version.sha256,
        embedding_dim=version.embedding_dim,
    )
    return ref, version.label_list


def detections_in(
    prediction: TagPrediction,
    frame: Frame,
    input_size: tuple[int, int],
    labels: list[str] | None,
    threshold: float,
) -> list[Detection]:
    """The model's boxes (and masks) for one frame, at or above `threshold`, scaled from the
    model's input to the original image and clipped to it."""
    width, height = frame.original_size
    sx, sy = width / input_size[0], height / input_size[1]

    def clip(x: float, y: float) -> tuple[float, float]:
        return round(min(max(x * sx, 0.0), width), 2), round(min(max(y * sy, 0.0), height), 2)

    found: list[Detection] = []
    masks = prediction.masks or []
    for index, box in enumerate(prediction.boxes):
        if box.confidence < threshold:
            continue
        label = labels[box.class_id] if labels and box.class_id < len(labels) else str(box.class_id)
        x1, y1 = clip(box.x1, box.y1)
        x2, y2 = clip(box.x2, box.y2)
        mask = masks[index] if index < len(masks) else None
        confidence = min(max(box.confidence, 0.0), 1.0)
        if mask is not None and len(mask) >= 3:
            points = [list(clip(x, y)) for x, y in mask]
            found.append(
                Detection(
                    label=label,
                    shape="polygon",
                    geometry={"points": points},  # type: ignore[dict-item]
                    box=(x1, y1, x2, y2),
                    confidence=confidence,
                )
            )
        else:
            found.append(
                Detection(
                    label=label,
                    shape="box",
                    geometry={"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                    box=(x1, y1, x2, y2),
                    confidence=confidence,
                )
            )
    return found
