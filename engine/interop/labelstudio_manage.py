"""Managing Label Studio projects from the engine: list, read, delete; the labels their
labeling configs offer (also a label group's of the lake's registry); more files of the lake
as tasks; an operation's annotations as predictions of the tasks. docs/labelstudio.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any
from xml.etree import ElementTree

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from engine.config import Settings
from engine.db.models import Annotation, File
from engine.errors import AnnotationNotFound, InvalidInput
from engine.interop.formats.label_studio import results_for
from engine.interop.labelstudio import controls_of, unique_name_of
from engine.interop.labelstudio_api import LabelStudioApi
from engine.interop.labelstudio_projects import IMPORT_BATCH, build_tasks
from engine.interop.records import ExportAnnotation
from engine.interop.selection import count_files, iter_pages, select_files, selection_labels
from engine.lake.labels import group_public
from sdk.schemas_labelstudio import (
    LabelStudioPredictionsAttached,
    LabelStudioProjectDeleted,
    LabelStudioProjectFiles,
    LabelStudioProjectSummary,
    LabelStudioTasksAdd,
    LabelStudioTasksAdded,
)

# The controls whose <Label> children are the labels a project offers.
LABEL_CONTROLS = frozenset(
    {
        "Labels",
        "RectangleLabels",
        "PolygonLabels",
        "KeyPointLabels",
        "EllipseLabels",
        "BrushLabels",
    }
)


def _parse(config: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(config)  # noqa: S314 - Label Studio's own config, bounded
    except ElementTree.ParseError as exc:
        raise InvalidInput(f"The project's label_config is not valid XML: {exc}.") from exc


def _controls(root: ElementTree.Element) -> list[ElementTree.Element]:
    return [element for element in root.iter() if element.tag in LABEL_CONTROLS]


def config_labels(config: str) -> list[str]:
    """The labels a labeling config offers, distinct and sorted."""
    root = _parse(config)
    found = {
        value
        for control in _controls(root)
        for label in control.iter("Label")
        if (value := label.get("value"))
    }
    return sorted(found)


def _clean(names: Iterable[str], field: str) -> list[str]:
    cleaned = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{field} holds an empty label name; name each label.", field=field)
        cleaned.append(name.strip())
    return list(dict.fromkeys(cleaned))


def edit_config(config: str, add: Sequence[str], remove: Sequence[str]) -> str:
    """`config` with `add` offered and `remove` taken away by each of its label controls."""
    root = _parse(config)
    controls = _controls(root)
    if not controls:
        raise InvalidInput(
            "The project's labeling config has no label control (<RectangleLabels>, "
            "<PolygonLabels>, <Labels>, ...) to hold labels; add one in Label Studio first."
        )
    gone = set(remove)
    for control in controls:
        for label in list(control.findall("Label")):
            if label.get("value") in gone:
                control.remove(label)
        have = {label.get("value") for label in control.findall("Label")}
        for name in add:
            if name not in have and name not in gone:
                ElementTree.SubElement(control, "Label", {"value": name})
        if not control.findall("Label"):
            raise InvalidInput(
                f"Removing {sorted(gone)} would leave the project's <{control.tag} "
                f"name={control.get('name')!r}> with no label; keep at least one."
            )
    return ElementTree.tostring(root, encoding="unicode")


def summary(api: LabelStudioApi, project: dict[str, Any]) -> LabelStudioProjectSummary:
    project_id = int(project["id"])
    return LabelStudioProjectSummary(
        project_id=project_id,
        name=str(project.get("title") or ""),
        project_url=f"{api.url}/projects/{project_id}",
        task_count=int(project.get("task_number") or 0),
        labels=config_labels(project.get("label_config") or "<View/>"),
        created_at=project.get("created_at"),
    )


def list_projects(*, api: LabelStudioApi) -> list[LabelStudioProjectSummary]:
    return [summary(api, project) for project in api.list_projects()]


def get_project(*, api: LabelStudioApi, project_id: int) -> LabelStudioProjectSummary:
    return summary(api, api.get_project(project_id))


def delete_project(*, api: LabelStudioApi, project_id: int) -> LabelStudioProjectDeleted:
    """The project leaves Label Studio; annotations already brought into the lake stay."""
    api.remove_project(project_id)
    return LabelStudioProjectDeleted(project_id=project_id)


def update_labels(
    *, api: LabelStudioApi, project_id: int, add: Sequence[str], remove: Sequence[str]
) -> LabelStudioProjectSummary:
    """Rewrite the project's labeling config: `add` offered, `remove` taken away (Label Studio
    refuses to take away a label its annotations use)."""
    add, remove = _clean(add, "add"), _clean(remove, "remove")
    if not add and not remove:
        raise InvalidInput("Name labels to add or to remove.")
    project = api.get_project(project_id)
    config = edit_config(project.get("label_config") or "", add, remove)
    return summary(api, api.set_label_config(project_id, config))


def attach_label_group(
    *, session: Session, api: LabelStudioApi, project_id: int, group_id: int
) -> LabelStudioProjectSummary:
    """The group's labels (the lake's label registry) join the project's labeling config."""
    group = group_public(session=session, group_id=group_id)
    if not group.labels:
        raise InvalidInput(
            f"Label group {group.name!r} holds no labels; attach labels to it first."
        )
    return update_labels(api=api, project_id=project_id, add=group.labels, remove=())


def _add_missing_labels(
    api: LabelStudioApi, project_id: int, config: str, labels: Iterable[str]
) -> list[str]:
    missing = sorted(set(labels) - set(config_labels(config)))
    if missing:
        api.set_label_config(project_id, edit_config(config, missing, ()))
    return missing


def _task_names(api: LabelStudioApi, project_id: int, image_key: str) -> dict[str, list[int]]:
    """The project's tasks by the lake file they show."""
    names: dict[str, list[int]] = defaultdict(list)
    for task in api.export_tasks(project_id):
        data = task.get("data")
        name = unique_name_of(data, image_key) if isinstance(data, dict) else None
        if name:
            names[name].append(int(task["id"]))
    return names


def add_files(
    *,
    session: Session,
    settings: Settings,
    api: LabelStudioApi,
    project_id: int,
    request: LabelStudioTasksAdd,
    base_url: str,
) -> LabelStudioTasksAdded:
    """Tasks for the selected files the project has no task of yet, their machine labels as
    predictions; labels the config lacks are added to it first."""
    if request.collection_id is None and not request.query and not request.filter:
        raise InvalidInput(
            "Name the files to add: a collection_id, a query or a filter (without them the "
            "selection would be the whole lake)."
        )
    project = api.get_project(project_id)
    config = project.get("label_config") or ""
    controls = controls_of(config)
    selection = select_files(
        session=session,
        collection_id=request.collection_id,
        content_type=None if request.collection_id is not None else request.content_type,
        query=request.query or None,
        filter=request.filter or None,
    )
    existing = _task_names(api, project_id, controls.image_key)
    made = build_tasks(
        session=session,
        settings=settings,
        selection=selection,
        model_name=request.model_name,
        url_seconds=request.url_seconds,
        base_url=base_url,
        skip=frozenset(existing),
        image_key=controls.image_key,
        from_name=controls.box_from or "label",
        to_name=controls.to_name,
    )
    added = (
        _add_missing_labels(api, project_id, config, selection_labels(session, selection))
        if made.tasks
        else []
    )
    for start in range(0, len(made.tasks), IMPORT_BATCH):
        api.import_tasks(project_id, made.tasks[start : start + IMPORT_BATCH])
    return LabelStudioTasksAdded(
        project_id=project_id,
        task_count=len(made.tasks),
        skipped=count_files(session, selection) - len(made.tasks),
        prediction_count=made.predictions,
        labels_added=added,
    )


def project_files(*, api: LabelStudioApi, project_id: int) -> LabelStudioProjectFiles:
    """The lake files the project's tasks show, by unique name."""
    config = api.get_project(project_id).get("label_config") or ""
    names = _task_names(api, project_id, controls_of(config).image_key)
    return LabelStudioProjectFiles(project_id=project_id, unique_names=sorted(names))


def _job_key(job_id: int) -> str:
    """A job's annotations as one prediction set: `model_version` `job-<id>`."""
    return f"job-{job_id}"


def attach_operations(
    *,
    session: Session,
    api: LabelStudioApi,
    project_id: int,
    operation_ids: Sequence[str],
    job_ids: Sequence[int] = (),
) -> LabelStudioPredictionsAttached:
    """The annotations of `operation_ids`, and the machine annotations of `job_ids`, on the
    project's files become predictions of their tasks, one per operation (job) and task,
    `model_version` the operation id (`job-<id>`)."""
    operations = list(dict.fromkeys(operation_ids))
    jobs = list(dict.fromkeys(job_ids))
    known = set(
        session.scalars(
            select(Annotation.operation_id)
            .where(Annotation.operation_id.in_(operations))
            .distinct()
        )
    )
    unknown = [op for op in operations if op not in known]
    if unknown:
        raise AnnotationNotFound(
            f"No annotations in the lake belong to operation(s) {unknown}; pass the "
            "operation_unique_id of an annotation upload or a job's operation.",
            operation_ids=unknown,
        )
    known_jobs = set(
        session.scalars(
            select(Annotation.job_id)
            .where(Annotation.job_id.in_(jobs), Annotation.source == "machine")
            .distinct()
        )
    )
    unknown_jobs = [job for job in jobs if job not in known_jobs]
    if unknown_jobs:
        raise AnnotationNotFound(
            f"No machine annotations in the lake were written by job(s) {unknown_jobs}; pass "
            "the id of a finished autotagging or auto-annotation job (a preview job's "
            "proposals count too).",
            job_ids=unknown_jobs,
        )
    chosen: list[ColumnElement[bool]] = []
    if operations:
        chosen.append(Annotation.operation_id.in_(operations))
    if jobs:
        chosen.append(and_(Annotation.job_id.in_(jobs), Annotation.source == "machine"))
    project = api.get_project(project_id)
    config = project.get("label_config") or ""
    controls = controls_of(config)
    tasks = _task_names(api, project_id, controls.image_key)
    selection = select_files(
        session=session,
        collection_id=None,
        content_type="image",
        query=None,
        filter=None,
        include_proposals=True,
    )
    selection = replace(
        selection,
        conditions=(*selection.conditions, File.unique_name.in_(list(tasks))),
        annotation_conditions=(
            *selection.annotation_conditions,
            or_(*chosen),
        ),
    )
    labels: set[str] = set()
    predictions: list[tuple[int, dict[str, Any]]] = []
    for page in iter_pages(session, selection):
        for selected in page:
            image = selected.image
            by_operation: dict[str, list[ExportAnnotation]] = defaultdict(list)
            for ann in image.annotations:
                if ann.shape not in ("box", "polygon"):
                    continue
                if ann.operation_id is not None and ann.operation_id in operations:
                    by_operation[ann.operation_id].append(ann)
                elif ann.job_id is not None and ann.job_id in jobs:
                    by_operation[_job_key(ann.job_id)].append(ann)
            for operation, found in by_operation.items():
                labels.update(a.label for a in found)
                scores = [a.confidence for a in found if a.confidence is not None]
                prediction = {
                    "model_version": operation,
                    "score": sum(scores) / len(scores) if scores else 0.0,
                    "result": results_for(
                        found,
                        width=image.width or 0,
                        height=image.height or 0,
                        from_name=controls.box_from or "label",
                        to_name=controls.to_name,
                    ),
                }
                predictions.extend((task, prediction) for task in tasks[image.unique_name])
    if not predictions:
        named = [*operations, *(_job_key(j) for j in jobs)]
        raise AnnotationNotFound(
            f"Operation(s) {named} have no boxes or polygons on the files of project "
            f"{project_id}; add those files to it first.",
            operation_ids=operations,
            job_ids=jobs,
        )
    added = _add_missing_labels(api, project_id, config, labels)
    for task, prediction in predictions:
        api.create_prediction(task, prediction)
    return LabelStudioPredictionsAttached(
        project_id=project_id,
        task_count=len({task for task, _ in predictions}),
        prediction_count=len(predictions),
        labels_added=added,
    )
