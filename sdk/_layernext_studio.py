"""LayerNext's datasets and annotation projects, onto the engine's dataset versions (frozen,
split snapshots downloaded as exports) and Label Studio projects."""
# ruff: noqa: B006

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sdk._layernext_base import LayerNextBase
from sdk._layernext_spellings import (
    collection_number,
    lake_content_type,
    lake_filter,
    not_yet,
)
from sdk.errors import BadRequest


def _project(project_id: object) -> int:
    """A Label Studio project id: an integer."""
    text = str(project_id).strip()
    if not text.isdigit():
        raise BadRequest(
            f"project_id must be a Label Studio project's integer id (the project_id that "
            f"create_annotation_project_from_collection returned), not {project_id!r}.",
            code="invalid_input",
        )
    return int(text)


def _images(content_type: object) -> None:
    if lake_content_type(content_type) != "image":
        raise BadRequest(
            "Label Studio projects here hold images; pass content_type='image'.",
            code="invalid_input",
        )


def _names(labels: Any) -> list[str]:
    """Label names from a list of names (or of LayerNext's `{"label": ...}` / `{"className":
    ...}` objects)."""
    if isinstance(labels, str) or not isinstance(labels, list | tuple):
        raise BadRequest("Pass a list of label names.", code="invalid_input")
    names = []
    for label in labels:
        if isinstance(label, Mapping):
            label = label.get("label") or label.get("className") or label.get("name")
        if not isinstance(label, str) or not label.strip():
            raise BadRequest(
                f"{label!r} is not a label name: pass names such as 'Bird'.", code="invalid_input"
            )
        names.append(label)
    return names


def _success(result: dict[str, Any]) -> dict[str, Any]:
    """LayerNext's `is_success` beside the engine's `isSuccess`."""
    return {"is_success": True, **result}


def _operations(operation_list: Any, augmentation_list: Any) -> None:
    if operation_list or augmentation_list:
        raise not_yet(
            "operation_list / augmentation_list",
            "Datasets are frozen, split snapshots of a selection here; filter the annotations "
            "with labels= and leave operations and augmentations out.",
        )


class StudioCompat(LayerNextBase):
    # -- datasets -------------------------------------------------------------------------------
    def create_dataset_from_collection(
        self,
        dataset_name: str,
        collection_id: str,
        split_info: Mapping[str, float],
        labels: Sequence[str] = [],
        export_types: Sequence[str] = [],
        query: str = "",
        filter: dict[str, Any] = {},
        operation_list: Any = None,
        augmentation_list: Any = None,
    ) -> dict[str, Any]:
        """A dataset (its first version) from a collection's files, split by `split_info`.
        Returns `{"isSuccess", "version_id", ...}`."""
        _operations(operation_list, augmentation_list)
        return self.client.create_dataset_from_collection(
            dataset_name,
            collection_number(collection_id),
            split_info,
            list(labels),
            list(export_types),
            query,
            lake_filter(filter),
        )

    def create_dataset_from_datalake(
        self,
        dataset_name: str,
        split_info: Mapping[str, float],
        labels: Sequence[str] = [],
        export_types: Sequence[str] = [],
        item_type: str = "image",
        query: str = "",
        filter: dict[str, Any] = {},
        operation_list: Any = None,
        augmentation_list: Any = None,
    ) -> dict[str, Any]:
        """A dataset from the lake's files of `item_type`."""
        _operations(operation_list, augmentation_list)
        return self.client.create_dataset_from_datalake(
            dataset_name,
            split_info,
            list(labels),
            list(export_types),
            lake_content_type(item_type, "item_type"),
            query,
            lake_filter(filter),
        )

    def update_dataset_version_from_collection(
        self,
        version_id: str,
        collection_id: str,
        split_info: Mapping[str, float],
        labels: Sequence[str] = [],
        export_types: Sequence[str] = [],
        query: str = "",
        filter: dict[str, Any] = {},
        is_new_version_required: bool = False,
        operation_list: Any = None,
        augmentation_list: Any = None,
    ) -> dict[str, Any]:
        """A new version of the dataset from a collection's files. Versions are frozen here,
        so an update always adds one, whatever `is_new_version_required` says."""
        _operations(operation_list, augmentation_list)
        return self.client.update_dataset_version_from_collection(
            int(version_id),
            collection_number(collection_id),
            split_info,
            list(labels),
            list(export_types),
            query,
            lake_filter(filter),
        )

    def update_dataset_version_from_datalake(
        self,
        version_id: str,
        split_info: Mapping[str, float],
        labels: Sequence[str] = [],
        export_types: Sequence[str] = [],
        item_type: str = "image",
        query: str = "",
        filter: dict[str, Any] = {},
        is_new_version_required: bool = False,
        operation_list: Any = None,
        augmentation_list: Any = None,
    ) -> dict[str, Any]:
        """A new version of the dataset from the lake's files of `item_type`."""
        _operations(operation_list, augmentation_list)
        return self.client.update_dataset_version_from_datalake(
            int(version_id),
            split_info,
            list(labels),
            list(export_types),
            lake_content_type(item_type, "item_type"),
            query,
            lake_filter(filter),
        )

    def delete_dataset_version(self, version_id: str) -> dict[str, Any]:
        """Delete a version (and its dataset with its last version)."""
        return self.client.delete_dataset_version(int(version_id))

    def download_dataset(
        self,
        version_id: str,
        export_type: str,
        custom_download_path: str | None = None,
        is_media_include: bool = True,
    ) -> dict[str, Any]:
        """Write the version in `export_type` (coco, yolo, voc, ...) with its splits; returns
        the export report (`destination`, `items`, `annotations`, `files`)."""
        return self.client.download_dataset(
            int(version_id), export_type, custom_download_path, is_media_include, progress=False
        )

    # -- annotation projects --------------------------------------------------------------------
    def create_annotation_project_from_collection(
        self,
        project_name: str,
        collection_id: str,
        query: str = "",
        filter: dict[str, Any] = {},
        fps: int = 4,
        frames_per_task: int = 120,
        assign_to_all: bool = False,
        send_email: bool = False,
        default_shape_type: str = "rectangle",
    ) -> dict[str, Any]:
        """A Label Studio project of the collection's images (the engine's Label Studio).
        Returns `{"isSuccess", "project_id", "project_url", ...}`."""
        return self.client.create_annotation_project_from_collection(
            project_name,
            collection_number(collection_id),
            query,
            lake_filter(filter),
            fps,
            frames_per_task,
            assign_to_all,
            send_email,
            default_shape_type,  # type: ignore[arg-type]
        )

    def create_annotation_project_from_datalake(
        self,
        project_name: str,
        datalake_query: str,
        datalake_filter: dict[str, Any] = {},
        content_type: str = "image",
        fps: int = 4,
        frames_per_task: int = 120,
        assign_to_all: bool = False,
        send_email: bool = False,
        default_shape_type: str = "rectangle",
    ) -> dict[str, Any]:
        """A Label Studio project of the lake's images the query and filter select; as
        `create_annotation_project_from_collection` otherwise."""
        _images(content_type)
        return self.client.create_annotation_project_from_datalake(
            project_name,
            datalake_query,
            lake_filter(datalake_filter),
            default_shape_type=default_shape_type,  # type: ignore[arg-type]
        )

    def add_files_to_annotation_project_from_collection(
        self,
        project_id: str,
        collection_id: str,
        query: str,
        filter: Any,
        fps: int = 0,
        frames_per_task: int = 120,
        assign_to_all: bool = False,
        send_email: bool = False,
        default_shape_type: str = "rectangle",
    ) -> dict[str, Any]:
        """Tasks for the collection's selected images the project has not got yet, machine
        labels as predictions. Returns `{"is_success", "task_count", "skipped", ...}`."""
        return _success(
            self.client.add_files_to_annotation_project(
                _project(project_id),
                collection_number(collection_id),
                query or "",
                lake_filter(filter),
            )
        )

    def add_files_to_annotation_project_from_datalake(
        self,
        project_id: str,
        query: str,
        filter: Any,
        content_type: str,
        fps: int = 0,
        frames_per_task: int = 120,
        assign_to_all: bool = False,
        send_email: bool = False,
        default_shape_type: str = "rectangle",
    ) -> dict[str, Any]:
        """As `add_files_to_annotation_project_from_collection`, of the lake's images the
        query and filter select (one of them is needed)."""
        _images(content_type)
        return _success(
            self.client.add_files_to_annotation_project(
                _project(project_id), None, query or "", lake_filter(filter)
            )
        )

    def attach_model_run_to_project(
        self, project_id: str, operation_id_array: list[str]
    ) -> dict[str, Any]:
        """The annotations of these operations on the project's images become predictions of
        its tasks. Returns `{"is_success", "message", "task_count", "prediction_count", ...}`."""
        if not isinstance(operation_id_array, list) or not all(
            isinstance(op, str) and op for op in operation_id_array
        ):
            raise BadRequest(
                "operation_id_array must be a list of operation ids (non-empty strings).",
                code="invalid_input",
            )
        if not operation_id_array:
            raise BadRequest(
                "operation_id_array is empty: name an operation.", code="invalid_input"
            )
        result = self.client.attach_operations_to_annotation_project(
            _project(project_id), operation_id_array
        )
        result["message"] = (
            f"{result['prediction_count']} predictions attached to {result['task_count']} tasks."
        )
        return _success(result)

    def delete_annotation_project(self, project_id: str) -> dict[str, Any]:
        """Delete the Label Studio project; annotations already downloaded stay in the lake."""
        return _success(self.client.delete_annotation_project(_project(project_id)))

    def add_labels_to_studio_project(self, project_id: str, add_list: Any) -> dict[str, Any]:
        """Offer these labels in the project's labeling config."""
        return _success(
            self.client.update_annotation_project_labels(_project(project_id), _names(add_list))
        )

    def remove_labels_to_studio_project(self, project_id: str, remove_list: Any) -> dict[str, Any]:
        """Take these labels out of the project's labeling config (Label Studio refuses while
        an annotation uses one)."""
        return _success(
            self.client.update_annotation_project_labels(
                _project(project_id), [], _names(remove_list)
            )
        )

    def get_annotation_project_list(self) -> list[dict[str, Any]]:
        """Every Label Studio project: `{"id", "name", "task_count", "labels", ...}`."""
        return [{"id": p["project_id"], **p} for p in self.client.list_annotation_projects()]

    def get_annotation_project_name_by_id(self, project_id: str) -> dict[str, Any]:
        """`{"projectName"}`."""
        return {"projectName": self.client.get_annotation_project(_project(project_id))["name"]}

    def attach_label_group_to_annotation_project(
        self, project_id: Any, group_id: Any
    ) -> dict[str, Any]:
        """The labels of a group of the label registry join the project's labeling config."""
        try:
            group = int(group_id)
        except (TypeError, ValueError):
            raise BadRequest(
                f"group_id must be a label group's integer id (get_all_label_groups), not "
                f"{group_id!r}.",
                code="invalid_input",
            ) from None
        return _success(
            self.client.attach_label_group_to_annotation_project(_project(project_id), group)
        )

    def download_project_annotations(
        self,
        project_id: Any,
        task_status_list: list[str] = [],
        is_annotated_only: bool = False,
        custom_download_path: str | None = None,
        is_media_include: bool = True,
    ) -> dict[str, Any]:
        """Bring the project's human annotations into the lake (operation
        `labelstudio:<project id>`; again replaces them). Download them with
        `download_collection`."""
        if task_status_list or custom_download_path:
            raise not_yet(
                "task_status_list / custom_download_path",
                "The project's annotations come into the lake; write them to a folder with "
                "download_collection(collection_id, operation_id_list=['labelstudio:<id>']).",
            )
        return self.client.download_project_annotations(int(project_id))

    def download_annotation_projects(
        self,
        project_id_list: Sequence[Any],
        task_status_list: list[str] = [],
        is_annotated_only: bool = False,
        custom_download_path: str | None = None,
        is_media_include: bool = True,
    ) -> list[dict[str, Any]]:
        """`download_project_annotations` of each project."""
        return [
            self.download_project_annotations(
                p, task_status_list, is_annotated_only, custom_download_path, is_media_include
            )
            for p in project_id_list
        ]
