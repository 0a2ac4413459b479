"""Label Studio projects from collections and their human annotations back into the lake.

`create_annotation_project_from_collection` keeps layernext's positional order; the engine
talks to Label Studio (METALAKE_LABELSTUDIO_URL / _TOKEN, or the `labelstudio_url` and
`labelstudio_token` given here). docs/labelstudio.md.
"""

from __future__ import annotations

from typing import Any

from sdk._base import BaseClient
from sdk.schemas_labelstudio import (
    AnnotationDownloadRequest,
    LabelStudioLabelGroupAttach,
    LabelStudioLabelsUpdate,
    LabelStudioPredictionsAttach,
    LabelStudioProjectCreate,
    LabelStudioTasksAdd,
    ShapeType,
)


def _headers(url: str | None, token: str | None) -> dict[str, str]:
    """Another Label Studio than the engine's, for the calls without a body."""
    headers = {}
    if url:
        headers["X-LabelStudio-Url"] = url
    if token:
        headers["X-LabelStudio-Token"] = token
    return headers


class LabelStudioCalls(BaseClient):
    def create_annotation_project_from_collection(
        self,
        project_name: str,
        collection_id: str | int,
        query: str = "",
        filter: dict[str, Any] | None = None,
        fps: int = 4,
        frames_per_task: int = 120,
        assign_to_all: bool = False,
        send_email: bool = False,
        default_shape_type: ShapeType = "rectangle",
        *,
        model_name: str | None = None,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
        url_seconds: int | None = None,
    ) -> dict[str, Any]:
        """A Label Studio project of the collection's files (narrowed by `query`, `filter`):
        one task per image at a signed URL, the machine labels (of `model_name`, else every
        model) as predictions, a labeling config naming the selection's labels. Returns
        `{"isSuccess", "project_id", "project_url", "task_count", "prediction_count",
        "labels"}`. `fps`, `frames_per_task`, `assign_to_all` and `send_email` are layernext's
        video and team options; Label Studio projects here hold images and ignore them."""
        body = LabelStudioProjectCreate(
            project_name=project_name,
            collection_id=int(collection_id),
            query=query,
            filter=filter or {},
            model_name=model_name,
            default_shape_type=default_shape_type,
            url_seconds=url_seconds,
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
        result: dict[str, Any] = self._post(
            "/labelstudio/projects", json=body.model_dump(mode="json")
        )
        return result

    def download_project_annotations(
        self,
        project_id: int,
        *,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
    ) -> dict[str, Any]:
        """The project's human annotations (each task's latest) into the lake as `human`
        annotations of operation `labelstudio:<project_id>`; downloading again replaces them.
        Returns `{"operation_id", "written", "replaced", "matched_images", ...}`."""
        body = AnnotationDownloadRequest(
            labelstudio_url=labelstudio_url, labelstudio_token=labelstudio_token
        )
        result: dict[str, Any] = self._post(
            f"/labelstudio/projects/{int(project_id)}/annotations/download",
            json=body.model_dump(mode="json"),
        )
        return result

    def create_annotation_project_from_datalake(
        self,
        project_name: str,
        query: str = "",
        filter: dict[str, Any] | None = None,
        *,
        model_name: str | None = None,
        default_shape_type: ShapeType = "rectangle",
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
        url_seconds: int | None = None,
    ) -> dict[str, Any]:
        """As `create_annotation_project_from_collection`, of the lake's images (narrowed by
        `query`, `filter`)."""
        body = LabelStudioProjectCreate(
            project_name=project_name,
            query=query,
            filter=filter or {},
            model_name=model_name,
            default_shape_type=default_shape_type,
            url_seconds=url_seconds,
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
        result: dict[str, Any] = self._post(
            "/labelstudio/projects", json=body.model_dump(mode="json")
        )
        return result

    def list_annotation_projects(
        self, *, labelstudio_url: str | None = None, labelstudio_token: str | None = None
    ) -> list[dict[str, Any]]:
        """Every Label Studio project: `{"project_id", "name", "project_url", "task_count",
        "labels", "created_at"}`."""
        result: list[dict[str, Any]] = self._get(
            "/labelstudio/projects", headers=_headers(labelstudio_url, labelstudio_token)
        )
        return result

    def get_annotation_project(
        self,
        project_id: int,
        *,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
    ) -> dict[str, Any]:
        """One Label Studio project, as `list_annotation_projects` gives them."""
        result: dict[str, Any] = self._get(
            f"/labelstudio/projects/{int(project_id)}",
            headers=_headers(labelstudio_url, labelstudio_token),
        )
        return result

    def delete_annotation_project(
        self,
        project_id: int,
        *,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
    ) -> dict[str, Any]:
        """Delete the project in Label Studio; annotations already downloaded stay in the
        lake. Returns `{"isSuccess", "project_id"}`."""
        result: dict[str, Any] = self._delete(
            f"/labelstudio/projects/{int(project_id)}",
            headers=_headers(labelstudio_url, labelstudio_token),
        )
        return result

    def update_annotation_project_labels(
        self,
        project_id: int,
        add: list[str] | None = None,
        remove: list[str] | None = None,
        *,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
    ) -> dict[str, Any]:
        """Offer the labels `add` and take away `remove` in every label control of the
        project's labeling config (Label Studio refuses to take away a label in use). Returns
        the project as `get_annotation_project`."""
        body = LabelStudioLabelsUpdate(
            add=add or [],
            remove=remove or [],
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
        result: dict[str, Any] = self._post(
            f"/labelstudio/projects/{int(project_id)}/labels", json=body.model_dump(mode="json")
        )
        return result

    def attach_label_group_to_annotation_project(
        self,
        project_id: int,
        group_id: int,
        *,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
    ) -> dict[str, Any]:
        """The labels of a group of the lake's label registry join the project's labeling
        config. Returns the project as `get_annotation_project`."""
        body = LabelStudioLabelGroupAttach(
            group_id=int(group_id),
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
        result: dict[str, Any] = self._post(
            f"/labelstudio/projects/{int(project_id)}/label-group",
            json=body.model_dump(mode="json"),
        )
        return result

    def add_files_to_annotation_project(
        self,
        project_id: int,
        collection_id: int | None = None,
        query: str = "",
        filter: dict[str, Any] | None = None,
        *,
        model_name: str | None = None,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
        url_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Tasks for the selected images (a collection's, or the lake's by `query` / `filter`)
        the project has no task of yet, their machine labels as predictions, labels the
        config lacks added to it. Returns `{"isSuccess", "project_id", "task_count",
        "skipped", "prediction_count", "labels_added"}`."""
        body = LabelStudioTasksAdd(
            collection_id=None if collection_id is None else int(collection_id),
            query=query,
            filter=filter or {},
            model_name=model_name,
            url_seconds=url_seconds,
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
        result: dict[str, Any] = self._post(
            f"/labelstudio/projects/{int(project_id)}/tasks", json=body.model_dump(mode="json")
        )
        return result

    def attach_operations_to_annotation_project(
        self,
        project_id: int,
        operation_ids: list[str],
        *,
        labelstudio_url: str | None = None,
        labelstudio_token: str | None = None,
    ) -> dict[str, Any]:
        """The annotations of these operations (model runs, annotation uploads) on the
        project's images become predictions of its tasks, one per operation and task
        (`model_version`: the operation id). Returns `{"isSuccess", "project_id",
        "task_count", "prediction_count", "labels_added"}`."""
        body = LabelStudioPredictionsAttach(
            operation_ids=list(operation_ids),
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
        result: dict[str, Any] = self._post(
            f"/labelstudio/projects/{int(project_id)}/predictions",
            json=body.model_dump(mode="json"),
        )
        return result
