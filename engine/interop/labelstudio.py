"""Label Studio's ML backend: predictions for its tasks, from the lake or from a model.

A task whose image is a lake file the model already labelled is answered from the lake; the
others run through the model (a `Predictor` the API hands in: the lake does not run models).
Regions go out in percent of the image, named after the controls of the project's labeling
config. Projects from collections and annotations back: `engine.interop.labelstudio_projects`.
How to connect: docs/labelstudio.md.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import Annotation, File, Model, ModelVersion
from engine.errors import InvalidInput, ModelNotFound
from engine.interop.formats.label_studio import results_for
from engine.interop.records import ExportAnnotation
from engine.interop.signing import SIGNED_FILES_PATH
from engine.lake.content import StoredFile, open_content
from engine.registry.store import parse_reference, resolve_version
from engine.storage import Storage
from sdk.schemas_labelstudio import (
    MlPrediction,
    MlPredictRequest,
    MlPredictResponse,
    MlSetupResponse,
)
from sdk.schemas_predict import Detection

UNIQUE_NAME_KEY = "metalake_unique_name"  # a task's data key naming its lake file
MODEL_KEY = "metalake_model"  # a task's data key naming the model that answers it
PREDICT_BATCH = 16  # images per model request from /ml/predict


class Predictor(Protocol):
    """Runs `model` (`name` or `name@N`) on encoded images within `timeout` seconds; returns
    the version number that ran and each image's detections in pixels."""

    def __call__(
        self, model: str, images: Sequence[bytes], *, timeout: float
    ) -> tuple[int, list[list[Detection]]]: ...


@dataclass(frozen=True)
class Controls:
    """What a labeling config names: the image's data key and tag, the box and polygon
    controls on it, and the labels they offer."""

    image_key: str
    to_name: str
    box_from: str | None
    polygon_from: str | None
    labels: frozenset[str]


def controls_of(config: str) -> Controls:
    """The first `<Image>` and the `<RectangleLabels>` / `<PolygonLabels>` pointing at it."""
    try:
        root = ElementTree.fromstring(config)  # noqa: S314 - Label Studio's own config, bounded
    except ElementTree.ParseError as exc:
        raise InvalidInput(f"The project's label_config is not valid XML: {exc}.") from exc
    image = next(root.iter("Image"), None)
    if image is None or not image.get("name") or not image.get("value", "").startswith("$"):
        raise InvalidInput(
            'The project\'s labeling config has no <Image name="..." value="$..."/>: the '
            "engine predicts on images; use an object-detection template."
        )
    to_name = image.get("name", "")
    found: dict[str, str] = {}
    labels: set[str] = set()
    for tag in ("RectangleLabels", "PolygonLabels"):
        for control in root.iter(tag):
            if control.get("toName") == to_name and control.get("name") and tag not in found:
                found[tag] = control.get("name", "")
                labels.update(v for label in control.iter("Label") if (v := label.get("value")))
    if not found:
        raise InvalidInput(
            f"The project's labeling config has no <RectangleLabels> or <PolygonLabels> on "
            f"image {to_name!r}; add one naming the model's labels."
        )
    return Controls(
        image_key=image.get("value", "$")[1:],
        to_name=to_name,
        box_from=found.get("RectangleLabels"),
        polygon_from=found.get("PolygonLabels"),
        labels=frozenset(labels),
    )


def unique_name_of(data: Mapping[str, Any], image_key: str) -> str | None:
    """The lake file a task shows: its `metalake_unique_name`, else the name in a signed URL."""
    named = data.get(UNIQUE_NAME_KEY)
    if isinstance(named, str) and named:
        return named
    url = data.get(image_key)
    if not isinstance(url, str):
        return None
    path = urlsplit(url).path
    marker = SIGNED_FILES_PATH + "/"
    if marker in path:
        return unquote(path.split(marker, 1)[1]) or None
    return None


def model_version_of(session: Session, reference: str) -> ModelVersion:
    """`name` (its latest version) or `name@N`, of any application."""
    name, _ = parse_reference(reference)
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise ModelNotFound(
            f"No model named {name!r}: register it, or point Label Studio at another model "
            "(http://<engine>/ml/models/<name>, or METALAKE_LABELSTUDIO_MODEL).",
            model=name,
        )
    return resolve_version(session, reference, model.application)


def chosen_model(settings: Settings, from_url: str | None) -> str:
    model = from_url or settings.labelstudio_model
    if not model:
        raise InvalidInput(
            "No model answers this ML backend: connect Label Studio to "
            "http://<engine>/ml/models/<model name>, or set METALAKE_LABELSTUDIO_MODEL."
        )
    return model


def setup(*, session: Session, settings: Settings, model: str | None) -> MlSetupResponse:
    version = model_version_of(session, chosen_model(settings, model))
    return MlSetupResponse(model_version=_version_name(session, version))


def _version_name(session: Session, version: ModelVersion) -> str:
    name = session.scalar(select(Model.name).where(Model.id == version.model_id))
    return f"{name}@{version.version}"


def predict(
    *,
    session: Session,
    settings: Settings,
    storage: Storage,
    request: MlPredictRequest,
    model: str | None,
    predictor: Predictor,
) -> MlPredictResponse:
    """One prediction per task, in order: from the lake when the model labelled the file,
    else from the model, within METALAKE_LABELSTUDIO_PREDICT_SECONDS (tasks left when the
    time is up, or whose image is not a lake file, get an empty prediction)."""
    deadline = time.monotonic() + settings.labelstudio_predict_seconds
    controls = controls_of(request.label_config)
    answers: list[MlPrediction | None] = [None] * len(request.tasks)
    pending: dict[str, list[tuple[int, File]]] = defaultdict(list)
    versions: dict[str, ModelVersion] = {}
    for index, task in enumerate(request.tasks):
        data = task.get("data")
        data = data if isinstance(data, dict) else {}
        task_model = data.get(MODEL_KEY)
        reference = chosen_model(settings, task_model if isinstance(task_model, str) else model)
        if reference not in versions:
            versions[reference] = model_version_of(session, reference)
        version = versions[reference]
        name = unique_name_of(data, controls.image_key)
        file = session.scalar(select(File).where(File.unique_name == name)) if name else None
        if file is None or not file.width or not file.height:
            answers[index] = MlPrediction(result=[], model_version=reference)
            continue
        pinned = parse_reference(reference)[1] is not None
        stored = _machine_annotations(session, file.id, version, pinned=pinned)
        if stored:
            version_id = max(a.model_version_id or 0 for a in stored)
            chosen = [a for a in stored if a.model_version_id == version_id]
            answers[index] = _prediction(
                chosen, file, controls, _version_name(session, _version(session, version_id))
            )
        else:
            pending[reference].append((index, file))
    for reference, files in pending.items():
        for start in range(0, len(files), PREDICT_BATCH):
            batch = files[start : start + PREDICT_BATCH]
            left = deadline - time.monotonic()
            if left < 1:
                break
            images = [_read(storage, file) for _, file in batch]
            number, detections = predictor(reference, images, timeout=left)
            name, _ = parse_reference(reference)
            for (index, file), found in zip(batch, detections, strict=True):
                records = [_detection_record(i, d) for i, d in enumerate(found)]
                answers[index] = _prediction(records, file, controls, f"{name}@{number}")
    return MlPredictResponse(
        results=[
            answer or MlPrediction(result=[], model_version=chosen_model(settings, model))
            for answer in answers
        ]
    )


def _version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    assert version is not None  # an annotation's version outlives it only by a delete cascade
    return version


def _machine_annotations(
    session: Session, file_id: int, version: ModelVersion, *, pinned: bool
) -> list[ExportAnnotation]:
    """The file's applied machine boxes and polygons of `version` (`pinned`: `name@N`), else
    of any version of its model."""
    versions = (
        select(ModelVersion.id).where(ModelVersion.id == version.id)
        if pinned
        else select(ModelVersion.id).where(ModelVersion.model_id == version.model_id)
    )
    rows = session.scalars(
        select(Annotation).where(
            Annotation.file_id == file_id,
            Annotation.source == "machine",
            Annotation.status == "applied",
            Annotation.shape.in_(("box", "polygon")),
            Annotation.frame_index.is_(None),
            Annotation.model_version_id.in_(versions),
        )
    )
    return [_record(row) for row in rows]


def _record(row: Annotation) -> ExportAnnotation:
    return ExportAnnotation(
        id=row.id,
        label=row.label,
        shape=row.shape,
        geometry=row.geometry,
        confidence=row.confidence,
        source=row.source,
        status=row.status,
        model_version_id=row.model_version_id,
    )


def _detection_record(index: int, detection: Detection) -> ExportAnnotation:
    return ExportAnnotation(
        id=index,
        label=detection.label,
        shape=detection.shape,
        geometry=dict(detection.geometry),
        confidence=detection.confidence,
        source="machine",
        status="applied",
    )


def _prediction(
    records: Sequence[ExportAnnotation], file: File, controls: Controls, version: str
) -> MlPrediction:
    """The records the config can show, as regions of its controls."""
    usable = [
        r
        for r in records
        if (not controls.labels or r.label in controls.labels)
        and ((r.shape == "box" and controls.box_from) or r.shape == "polygon")
    ]
    if controls.polygon_from is None:  # a polygon shown as its enclosing box
        usable = [_as_box(r) if r.shape == "polygon" else r for r in usable]
    results = results_for(
        usable,
        width=file.width or 0,
        height=file.height or 0,
        from_name=controls.box_from or "label",
        to_name=controls.to_name,
    )
    for result in results:
        if result["type"] == "polygonlabels":
            result["from_name"] = controls.polygon_from
    scores = [r.confidence for r in usable if r.confidence is not None]
    return MlPrediction(
        result=results,
        score=sum(scores) / len(scores) if scores else 0.0,
        model_version=version,
    )


def _as_box(record: ExportAnnotation) -> ExportAnnotation:
    xs = [float(p[0]) for p in record.geometry["points"]]
    ys = [float(p[1]) for p in record.geometry["points"]]
    geometry = {"x1": min(xs), "y1": min(ys), "x2": max(xs), "y2": max(ys)}
    return ExportAnnotation(
        id=record.id,
        label=record.label,
        shape="box",
        geometry=geometry,
        confidence=record.confidence,
        source=record.source,
        status=record.status,
        model_version_id=record.model_version_id,
    )


def _read(storage: Storage, file: File) -> bytes:
    stored = StoredFile(
        file_id=file.id,
        storage_uri=file.storage_uri,
        sha256=file.sha256,
        size_bytes=file.size_bytes,
        media_type="application/octet-stream",
        name=file.unique_name,
    )
    return b"".join(open_content(stored, storage=storage))
