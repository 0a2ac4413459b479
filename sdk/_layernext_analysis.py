"""LayerNext's automatic analysis calls (models, autotagging, embeddings, jobs) and its label
registry calls.

Analysis calls return `{"jobId": <job id>}` as LayerNext does; the job is the engine's, so
`wait_for_job_complete`, `client.client.get_job` and `metalake jobs show` all know it.
"""
# ruff: noqa: B006

from __future__ import annotations

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
from sdk.schemas import FINISHED_JOB_STATUSES, MAX_EMBEDDING_BATCH

LAYERNEXT_EMBEDDING_BATCH = 100
"""LayerNext refuses a batch of more than 100 embeddings; the engine takes 99 a request, so a
batch of 100 is sent as two requests counted on one job."""

LABEL_REGISTRY = (
    "The lake has no label registry yet: labels are the names annotations and tags carry "
    "(see a model's label_list with client.client.get_model(name))."
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
        raise not_yet(
            "auto_annotate_project",
            "Auto-annotate the collection instead (client.client.auto_annotate_collection), "
            "then make the Label Studio project from it: its machine annotations become the "
            "project's predictions.",
        )

    def prompt_inference(self, name: Any, shape: Any, **kwargs: Any) -> dict[str, Any]:
        raise not_yet(
            "prompt_inference",
            "Run one image through a model with client.client.predict(image_path, model_id).",
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
        """Store up to 100 vectors, all or nothing per request. Returns `{"success",
        "upsert_count", "message", "job_id"}`."""
        if len(embedding_list) > LAYERNEXT_EMBEDDING_BATCH:
            raise BadRequest(
                f"embedding_list holds {len(embedding_list)} entries; a batch holds at most "
                f"{LAYERNEXT_EMBEDDING_BATCH}. Use insert_image_embeddings for more.",
                code="embedding_batch_too_large",
            )
        session = session_id or f"layernext-{uuid.uuid4().hex}"
        written, job_id = 0, None
        for start in range(0, len(embedding_list), MAX_EMBEDDING_BATCH):
            result = self.client.insert_image_embeddings_batch(
                embedding_list[start : start + MAX_EMBEDDING_BATCH],
                model_name,
                vector_dimension,
                session,
            )
            written += int(result["written"])
            job_id = result["job_id"]
        return {"success": True, "upsert_count": written, "message": "", "job_id": job_id}

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
        assert job["status"] in FINISHED_JOB_STATUSES
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
            "Jobs are made by the engine for the work it runs (analysis calls, embedding "
            "imports by session_id, exports); list them with client.client.list_jobs().",
        )

    # -- labels ---------------------------------------------------------------------------------
    def get_all_labels(self) -> list[dict[str, Any]]:
        raise not_yet("get_all_labels", LABEL_REGISTRY)

    def get_labels_in_group(self, group_id: Any) -> list[dict[str, Any]]:
        raise not_yet("get_labels_in_group", LABEL_REGISTRY)

    def create_system_label(self, label: Any) -> dict[str, Any]:
        raise not_yet(
            "create_system_label",
            LABEL_REGISTRY + " A label exists once an annotation or tag uses it.",
        )

    def create_label_group(self, group_name: Any, label_ids: Any) -> dict[str, Any]:
        raise not_yet("create_label_group", LABEL_REGISTRY)

    def attach_labels_to_group(self, group_id: Any, label_ids: Any) -> dict[str, Any]:
        raise not_yet("attach_labels_to_group", LABEL_REGISTRY)

    def detach_labels_from_group(self, group_id: Any, label_ids: Any) -> dict[str, Any]:
        raise not_yet("detach_labels_from_group", LABEL_REGISTRY)

    def get_all_label_groups(self) -> list[dict[str, Any]]:
        raise not_yet("get_all_label_groups", LABEL_REGISTRY)
