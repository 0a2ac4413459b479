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
    LabelStudioProjectCreate,
    ShapeType,
)


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
