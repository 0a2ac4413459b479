"""Label Studio projects made from collections, and their human annotations back in the lake.

Human annotations come in as `human` annotations of one operation per project
(`labelstudio:<project id>`): a download replaces the project's set, a webhook event the set's
annotations of one file, so the two agree. docs/labelstudio.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import Annotation, File, Model, ModelVersion
from engine.errors import InvalidInput
from engine.interop.formats.label_studio import IMAGE_KEY, PATH_KEY, label_config, results_for
from engine.interop.labelstudio import UNIQUE_NAME_KEY, model_version_of, unique_name_of
from engine.interop.labelstudio_api import LabelStudioApi
from engine.interop.records import ExportAnnotation
from engine.interop.selection import Selection, iter_pages, select_files, selection_labels
from engine.interop.signing import signed_url
from engine.lake.annotations import annotation_rows
from engine.lake.formats import label_studio
from engine.lake.formats.parsed import Problems
from sdk.schemas import AnnotationUploadReport
from sdk.schemas_labelstudio import (
    LabelStudioProjectCreate,
    LabelStudioProjectPublic,
    MlWebhook,
    MlWebhookReport,
)

IMPORT_BATCH = 500  # tasks per import request
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")


def operation_id(project_id: int) -> str:
    return f"labelstudio:{project_id}"


# -- human annotations back ---------------------------------------------------------------------
def _rows(
    session: Session, task: Mapping[str, Any], annotations: list[Any], operation: str
) -> tuple[File | None, list[dict[str, Any]]]:
    """The lake file of `task` and rows of its human `annotations` (cancelled ones skipped)."""
    data = task.get("data")
    name = unique_name_of(data, IMAGE_KEY) if isinstance(data, dict) else None
    file = session.scalar(select(File).where(File.unique_name == name)) if name else None
    if file is None:
        return None, []
    document = f"Label Studio task {task.get('id')}"
    image = label_studio.parse(
        [{"data": data, "annotations": annotations}], document=document
    ).human[0]
    problems = Problems(document)
    rows = annotation_rows(
        image,
        file,
        source="human",
        operation_id=operation,
        problems=problems,
        size_field="original_width",
        metadata={"labelstudio": {"task": task.get("id")}},
    )
    problems.raise_if_any()
    return file, rows


def download_annotations(
    *, session: Session, api: LabelStudioApi, project_id: int
) -> AnnotationUploadReport:
    """The project's human annotations (every annotator's, not the skipped ones) replace its
    operation's set."""
    operation = operation_id(project_id)
    tasks = api.export_tasks(project_id)
    rows: list[dict[str, Any]] = []
    matched, unknown = 0, []
    for task in tasks:
        annotations = task.get("annotations")
        if not isinstance(annotations, list) or not annotations:
            continue
        file, found = _rows(session, task, annotations, operation)
        if file is None:
            unknown.append(str(task.get("id")))
            continue
        matched += 1
        rows.extend(found)
    replaced = session.execute(delete(Annotation).where(Annotation.operation_id == operation))
    if rows:
        session.execute(insert(Annotation), rows)
    return AnnotationUploadReport(
        operation_id=operation,
        written=len(rows),
        replaced=replaced.rowcount,  # type: ignore[attr-defined]
        matched_images=matched,
        unknown_images=unknown[:50],
    )


def webhook(*, session: Session, event: MlWebhook) -> MlWebhookReport:
    """An annotation event replaces the project's annotations of that task's file."""
    project = event.project or {}
    project_id = project.get("id")
    if event.action not in ANNOTATION_EVENTS or event.task is None or event.annotation is None:
        return MlWebhookReport(action=event.action)
    if not isinstance(project_id, int):
        raise InvalidInput("The webhook event names no project id (project.id).")
    operation = operation_id(project_id)
    file, rows = _rows(session, event.task, [event.annotation], operation)
    if file is None:
        return MlWebhookReport(action=event.action, operation_id=operation)
    replaced = session.execute(
        delete(Annotation).where(
            Annotation.operation_id == operation, Annotation.file_id == file.id
        )
    )
    if rows:
        session.execute(insert(Annotation), rows)
    return MlWebhookReport(
        action=event.action,
        operation_id=operation,
        unique_name=file.unique_name,
        written=len(rows),
        replaced=replaced.rowcount,  # type: ignore[attr-defined]
    )


# -- projects from collections ------------------------------------------------------------------
def create_project(
    *,
    session: Session,
    settings: Settings,
    api: LabelStudioApi,
    request: LabelStudioProjectCreate,
    base_url: str,
) -> LabelStudioProjectPublic:
    """A Label Studio project of the selected files: tasks at signed URLs, the machine labels
    as predictions (one per model version), a config naming the selection's labels."""
    selection = select_files(
        session=session,
        collection_id=request.collection_id,
        content_type=None if request.collection_id is not None else request.content_type,
        query=request.query or None,
        filter=request.filter or None,
    )
    labels = selection_labels(session, selection)
    if not labels:
        raise InvalidInput(
            "The selection's files have no annotations, so there are no labels to name in the "
            "project's labeling config; annotate them first (an auto-annotation job)."
        )
    made = build_tasks(
        session=session,
        settings=settings,
        selection=selection,
        model_name=request.model_name,
        url_seconds=request.url_seconds,
        base_url=base_url,
    )
    tasks, predictions = made.tasks, made.predictions
    polygons = made.polygons or request.default_shape_type == "polygon"
    config = label_config(labels, polygons=polygons)
    project = api.create_project(request.project_name, config)
    project_id = int(project["id"])
    try:
        for start in range(0, len(tasks), IMPORT_BATCH):
            api.import_tasks(project_id, tasks[start : start + IMPORT_BATCH])
    except BaseException:
        api.delete_project(project_id)  # nothing half-made is left behind
        raise
    return LabelStudioProjectPublic(
        project_id=project_id,
        project_url=f"{api.url}/projects/{project_id}",
        task_count=len(tasks),
        prediction_count=predictions,
        labels=list(labels),
    )


def _version_names(session: Session) -> dict[int, tuple[int, str]]:
    """Every model version: its model's id and `name@N`."""
    rows = session.execute(
        select(ModelVersion.id, ModelVersion.model_id, Model.name, ModelVersion.version).join(
            Model, Model.id == ModelVersion.model_id
        )
    )
    return {vid: (mid, f"{name}@{number}") for vid, mid, name, number in rows}


@dataclass(frozen=True)
class Tasks:
    """Label Studio tasks of a selection: one per file, its machine labels as predictions."""

    tasks: list[dict[str, Any]]
    predictions: int
    polygons: bool  # some file has a polygon


def build_tasks(
    *,
    session: Session,
    settings: Settings,
    selection: Selection,
    model_name: str | None,
    url_seconds: int | None,
    base_url: str,
    skip: frozenset[str] = frozenset(),
    image_key: str = IMAGE_KEY,
    from_name: str = "label",
    to_name: str = "image",
) -> Tasks:
    """One task per selected file (those named in `skip` left out) at a signed URL, with one
    prediction per model version of its machine labels (`model_name`'s only, when given);
    `image_key`, `from_name`, `to_name` as the project's labeling config names them."""
    versions = _version_names(session)
    wanted: int | None = None
    if model_name:
        wanted = model_version_of(session, model_name).model_id
    polygons = False
    tasks: list[dict[str, Any]] = []
    predictions = 0
    for page in iter_pages(session, selection):
        for selected in page:
            image = selected.image
            if image.unique_name in skip:
                continue
            by_version: dict[int, list[ExportAnnotation]] = defaultdict(list)
            for ann in image.annotations:
                if (
                    ann.source == "machine"
                    and ann.model_version_id is not None
                    and (wanted is None or versions[ann.model_version_id][0] == wanted)
                ):
                    by_version[ann.model_version_id].append(ann)
            polygons |= any(a.shape == "polygon" for a in image.annotations)
            task_predictions = []
            for version_id, machine in by_version.items():
                results = results_for(
                    machine,
                    width=image.width or 0,
                    height=image.height or 0,
                    from_name=from_name,
                    to_name=to_name,
                )
                scores = [a.confidence for a in machine if a.confidence is not None]
                task_predictions.append(
                    {
                        "model_version": versions[version_id][1],
                        "score": sum(scores) / len(scores) if scores else 0.0,
                        "result": results,
                    }
                )
            predictions += len(task_predictions)
            tasks.append(
                {
                    "data": {
                        image_key: signed_url(
                            settings,
                            image.unique_name,
                            expires_in=url_seconds,
                            base_url=base_url,
                        ),
                        UNIQUE_NAME_KEY: image.unique_name,
                        PATH_KEY: image.path,
                    },
                    "predictions": task_predictions,
                }
            )
    return Tasks(tasks=tasks, predictions=predictions, polygons=polygons)
