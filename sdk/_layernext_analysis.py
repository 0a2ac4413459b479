"""LayerNext's automatic analysis calls (models, autotagging, embeddings, jobs) and its label
registry calls (the engine's labels and label groups).

Analysis calls return `{"jobId": <job id>}` as LayerNext does; the job is the engine's, so
`wait_for_job_complete`, `client.client.get_job` and `metalake jobs show` all know it.
"""
# ruff: noqa: B006

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sdk._layernext_base import LayerNextBase
from sdk._layernext_spellings import (
    UPLOAD_JOB_PREFIX,
    lake_content_type,
    lake_filter,
    not_yet,
)
from sdk.errors import BadRequest
from sdk.schemas import MAX_EMBEDDING_BATCH
from sdk.schemas_labels import LabelAttribute, LabelCreate, LabelGroupCreate, LabelIds
from sdk.schemas_labelstudio import LabelStudioPredictionsAttach

LAYERNEXT_EMBEDDING_BATCH = MAX_EMBEDDING_BATCH
"""LayerNext refuses a batch of more than 100 embeddings; the engine takes as many a request,
so a batch is one request, all or nothing."""


AUTO_ANNOTATION_SHAPES = {
    "segment": "polygon",
    "segmentation": "polygon",
    "polygon": "polygon",
    "rectangle": "box",
    "box": "box",
    "bbox": "box",
}
AUTO_ANNOTATION_OPTIONS = frozenset({"prompt", "confidence_threshold", "inference_platform"})


def _number(value: Any, what: str) -> int:
    text = str(value).strip()
    if not text.isdigit():
        raise BadRequest(
            f"{what} id {value!r} is not an id of this engine: ids are integers (the `id` or "
            "`label_reference` the label calls return).",
            code="invalid_input",
        )
    return int(text)


def _label_ids(label_ids: Any) -> list[int]:
    if isinstance(label_ids, (str, int)):
        label_ids = [label_ids]
    if not label_ids:
        raise BadRequest("label_ids is empty: name at least one label.", code="invalid_input")
    return [_number(i, "label") for i in label_ids]


def _label_body(label: Any) -> LabelCreate:
    """LayerNext's label dict as the engine's label."""
    if isinstance(label, str):
        label = {"className": label}
    if not isinstance(label, dict) or not label.get("className"):
        raise BadRequest(
            'The label needs a non-empty \'className\': {"className": "Bird", '
            '"description": "...", "attributes": [{"attributeName": "colour", "values": '
            '[{"valueName": "red"}]}]}.',
            code="invalid_input",
        )
    attributes = []
    for attribute in label.get("attributes") or []:
        name = attribute.get("attributeName") if isinstance(attribute, dict) else None
        if not name:
            raise BadRequest(
                "Each attribute needs a non-empty 'attributeName'.", code="invalid_input"
            )
        values = [v.get("valueName") for v in attribute.get("values") or []]
        if not all(values) or len(set(values)) != len(values):
            raise BadRequest(
                f"The values of attribute {name!r} need distinct, non-empty 'valueName's.",
                code="invalid_input",
            )
        attributes.append(LabelAttribute(name=name, values=values))
    names = [a.name for a in attributes]
    if len(set(names)) != len(names):
        raise BadRequest("Two attributes share an attributeName.", code="invalid_input")
    return LabelCreate(
        name=label["className"], description=label.get("description", ""), attributes=attributes
    )


def _job_number(job_id: Any) -> int:
    text = str(job_id).strip()
    if not text.isdigit():
        raise BadRequest(
            f"job_id {job_id!r} is not a job of this engine: job ids are integers (the jobId "
            "an analysis call returned), or an upload's 'upload-<n>'.",
            code="invalid_job_id",
        )
    return int(text)


class AnalysisCompat(LayerNextBase):
    # -- models ---------------------------------------------------------------------------------
    def register_model(self, input_model_path: Any, model_id: Any, task: Any) -> dict[str, Any]:
        """Register the bundle folder (or .tar.gz) as model `model_id` for `task`
        ('auto_tagging', 'auto_annotation' or 'embedding'). Returns the new version."""
        return self.client.register_model(input_model_path, model_id, task)

    # -- autotagging ----------------------------------------------------------------------------
    def auto_tag_collection(
        self,
        collection_id: Any,
        model_id: str = "default",
        input_resolution: Sequence[int] = (480, 480),
        confidence_threshold: float = 0.5,
        query: str = "",
        filters: dict[str, Any] = {},
        inference_platform: str = "use_env",
    ) -> dict[str, Any]:
        """Tag the collection's files with model `model_id`. Returns `{"jobId"}`."""
        job = self.client.auto_tag_collection(
            collection_id,
            model_id,
            input_resolution,
            confidence_threshold,
            query or None,
            lake_filter(filters),
            inference_platform,
        )
        return {"jobId": job["job_id"]}

    def generate_auto_tags_to_metalake(
        self,
        item_type: Any,
        model_id: str = "default",
        input_resolution: Sequence[int] = (300, 300),
        confidence_threshold: float = 0.5,
        query: str = "",
        filters: dict[str, Any] = {},
        inference_platform: str = "use_env",
    ) -> dict[str, Any]:
        """Tag the lake's files of `item_type` with model `model_id`. Returns `{"jobId"}`."""
        job = self.client.generate_auto_tags_to_metalake(
            lake_content_type(item_type, "item_type"),
            model_id,
            input_resolution,
            confidence_threshold,
            query or None,
            lake_filter(filters),
            inference_platform,
        )
        return {"jobId": job["job_id"]}

    def auto_annotate_project(
        self,
        project_id: Any,
        annotation_type: str = "segment",
        model_id: str = "default",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Auto-annotate the lake files of Label Studio project `project_id` with model
        `model_id`, then attach the job's machine annotations as the project's predictions
        (`model_version` `job-<jobId>`). `annotation_type`: 'segment' (polygons) or
        'rectangle' (boxes). Keyword options: `prompt`, `confidence_threshold`,
        `inference_platform`. Returns `{"jobId"}` once the predictions
        are in the project (LayerNext returns at once and attaches them later)."""
        shape = AUTO_ANNOTATION_SHAPES.get(str(annotation_type).strip().lower())
        if shape is None:
            raise BadRequest(
                f"annotation_type {annotation_type!r} is not known: use 'segment' (polygons) "
                "or 'rectangle' (boxes).",
                code="invalid_input",
            )
        unknown = sorted(set(kwargs) - AUTO_ANNOTATION_OPTIONS)
        if unknown:
            raise BadRequest(
                f"auto_annotate_project does not take {unknown}; its options are "
                f"{sorted(AUTO_ANNOTATION_OPTIONS)}.",
                code="invalid_input",
            )
        project = _number(project_id, "project")
        names: list[str] = self.client._get(f"/labelstudio/projects/{project}/files")[
            "unique_names"
        ]
        if not names:
            raise BadRequest(
                f"Label Studio project {project} has no tasks showing lake files: add files "
                "with add_files_to_annotation_project_from_collection first.",
                code="invalid_input",
            )
        job = self.client.generate_auto_annotations_to_metalake(
            "image",
            model_id,
            kwargs.get("prompt"),
            shape,
            kwargs.get("confidence_threshold", 0.5),
            "name IN [" + ", ".join(json.dumps(n) for n in names) + "]",
            inference_platform=kwargs.get("inference_platform", "use_env"),
        )
        job_id = int(job["job_id"])
        done = self.wait_for_job_complete(str(job_id))
        if not done["is_success"]:
            raise BadRequest(
                f"The auto-annotation job {job_id} of project {project} did not succeed: "
                f"{done.get('error')}; see `metalake jobs show {job_id}`.",
                code="job_failed",
            )
        self.client._post(
            f"/labelstudio/projects/{project}/predictions",
            json=LabelStudioPredictionsAttach(job_ids=[job_id]).model_dump(mode="json"),
        )
        return {"jobId": job_id}

    def prompt_inference(self, name: Any, shape: Any, **kwargs: Any) -> dict[str, Any]:
        raise not_yet(
            "prompt_inference",
            "LayerNext's prompt_inference sends a box or clicks on one image to its "
            "interactive (SAM) segmenter; the engine's prompt models take label text, not "
            "boxes or clicks. For one image's predictions use "
            "client.client.predict(image_path, model_id).",
        )

    # -- embeddings -----------------------------------------------------------------------------
    def generate_embeddings_for_collection(
        self,
        collection_id: Any,
        model_id: str = "default",
        query: str = "",
        filters: dict[str, Any] = {},
        inference_platform: str = "use_env",
    ) -> dict[str, Any]:
        """One embedding per selected image of the collection. Returns `{"jobId"}`."""
        job = self.client.generate_embeddings_for_collection(
            collection_id, model_id, query or None, lake_filter(filters), inference_platform
        )
        return {"jobId": job["job_id"]}

    def generate_embeddings_to_metalake(
        self,
        item_type: str = "image",
        model_id: str = "default",
        query: str = "",
        filters: dict[str, Any] = {},
        inference_platform: str = "use_env",
    ) -> dict[str, Any]:
        """One embedding per selected image of the lake. Returns `{"jobId"}`."""
        job = self.client.generate_embeddings_to_metalake(
            lake_content_type(item_type, "item_type"),
            model_id,
            query or None,
            lake_filter(filters),
            inference_platform,
        )
        return {"jobId": job["job_id"]}

    def insert_image_embeddings_batch(
        self,
        embedding_list: list[dict[str, Any]],
        model_name: str,
        vector_dimension: list[int],
        session_id: str = "",
    ) -> dict[str, Any]:
        """Store up to 100 vectors in one request, all or nothing. Returns `{"success",
        "upsert_count", "message", "job_id"}`."""
        if len(embedding_list) > LAYERNEXT_EMBEDDING_BATCH:
            raise BadRequest(
                f"embedding_list holds {len(embedding_list)} entries; a batch holds at most "
                f"{LAYERNEXT_EMBEDDING_BATCH}. Use insert_image_embeddings for more.",
                code="embedding_batch_too_large",
            )
        session = session_id or f"layernext-{uuid.uuid4().hex}"
        result = self.client.insert_image_embeddings_batch(
            embedding_list, model_name, vector_dimension, session
        )
        return {
            "success": True,
            "upsert_count": int(result["written"]),
            "message": "",
            "job_id": result["job_id"],
        }

    def insert_image_embeddings(
        self,
        embedding_list: list[dict[str, Any]],
        model_name: str,
        vector_dimension: list[int],
    ) -> dict[str, Any]:
        """Store any number of vectors, in batches counted on one job. Returns `{"success",
        "upsert_count", "message", "job_id"}`."""
        result = self.client.insert_image_embeddings(embedding_list, model_name, vector_dimension)
        return {
            "success": True,
            "upsert_count": result["written"],
            "message": [],
            "job_id": result["job_id"],
        }

    def get_embedding_vector(
        self, unique_names: list[str], model_name: str
    ) -> list[dict[str, Any]]:
        """`[{"uniqueName", "embeddings"}]` in the order asked (`embeddings` None when the file
        has no vector of that model)."""
        return self.client.get_embedding_vector(unique_names, model_name)

    # -- jobs -----------------------------------------------------------------------------------
    def wait_for_job_complete(self, job_id: str) -> dict[str, Any]:
        """Block until the job ends. Returns `{"is_success", "job_status"}`: 'COMPLETED', or
        'FAILED' (with `error`) for a job that failed or was cancelled; `job` holds the
        engine's record."""
        if str(job_id).startswith(UPLOAD_JOB_PREFIX):
            self._upload_collection(job_id)  # an upload is done when its call returns
            return {"is_success": True, "job_status": "COMPLETED"}
        job = self.client.wait_for_job(_job_number(job_id), progress=False)
        ok = job["status"] == "succeeded"
        result: dict[str, Any] = {
            "is_success": ok,
            "job_status": "COMPLETED" if ok else "FAILED",
            "job": job,
        }
        if not ok:
            result["error"] = job.get("error") or f"the job {job['status']}"
        return result

    def create_or_update_job(
        self,
        session_id: str,
        job_name: str,
        job_type: int,
        progress: int,
        status: int,
        job_detail: dict[str, Any] = {},
    ) -> dict[str, Any]:
        raise not_yet(
            "create_or_update_job",
            "LayerNext's SDK calls it to open the server job its analysis calls then run; "
            "here the engine makes the job for the work it runs (every analysis call returns "
            "its jobId; embedding imports by session_id are one job), so a script needs no "
            "record of its own. List jobs with client.client.list_jobs().",
        )

    # -- labels ---------------------------------------------------------------------------------
    def get_all_labels(self) -> list[dict[str, Any]]:
        """Every label of the registry by name: `id` (the label reference the group calls
        take), `name`, `description`, `attributes`, `groups`."""
        return list(self.client._get("/labels"))

    def get_labels_in_group(self, group_id: Any) -> list[dict[str, Any]]:
        """The labels of one group."""
        return list(self.client._get("/labels", params={"group_id": _number(group_id, "group")}))

    def create_system_label(self, label: Any) -> dict[str, Any]:
        """A label from LayerNext's `{"className", "description", "attributes":
        [{"attributeName", "values": [{"valueName"}]}]}`; an existing name returns its label.
        Returns `{"label_reference": <id>, ...the label}`."""
        body = _label_body(label)
        created = self.client._post("/labels", json=body.model_dump(mode="json"))
        return {"label_reference": created["id"], **created}

    def create_label_group(self, group_name: Any, label_ids: Any) -> dict[str, Any]:
        """A new group of the labels `label_ids` (their references). Returns the group: `id`,
        `name`, `labels`, `label_ids`."""
        if not group_name:
            raise BadRequest("group_name is empty: name the group.", code="invalid_input")
        body = LabelGroupCreate(name=str(group_name), label_ids=_label_ids(label_ids))
        result: dict[str, Any] = self.client._post("/label-groups", json=body.model_dump())
        return result

    def attach_labels_to_group(self, group_id: Any, label_ids: Any) -> dict[str, Any]:
        """Add labels to the group; returns the group."""
        body = LabelIds(label_ids=_label_ids(label_ids))
        result: dict[str, Any] = self.client._post(
            f"/label-groups/{_number(group_id, 'group')}/labels", json=body.model_dump()
        )
        return result

    def detach_labels_from_group(self, group_id: Any, label_ids: Any) -> dict[str, Any]:
        """Take labels out of the group; returns the group."""
        body = LabelIds(label_ids=_label_ids(label_ids))
        result: dict[str, Any] = self.client._post(
            f"/label-groups/{_number(group_id, 'group')}/labels/detach", json=body.model_dump()
        )
        return result

    def get_all_label_groups(self) -> list[dict[str, Any]]:
        """Every label group: `id`, `name`, `labels`, `label_ids`."""
        return list(self.client._get("/label-groups"))
