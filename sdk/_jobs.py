"""Analysis calls (sections 7.2-7.5 of the SDK manual) and jobs: autotag, auto-annotate, embed,
then get / list / wait for / cancel / retry / resume jobs.

Names, positional order and defaults are the manual's; `model_name=` is accepted as a keyword
alias of `model_id` (the manual's tables and signatures name it both ways), and LayerNext's
spellings `filters=` and `item_type=` as aliases of `filter` and `content_type`. Each analysis call
returns at once with `{"job_id", "status", "total"}`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from sdk._base import BaseClient, either
from sdk.errors import BadRequest, MetaLakeError, ValidationFailed
from sdk.schemas import (
    FINISHED_JOB_STATUSES,
    MAX_JOB_WAIT,
    AutoAnnotateRequest,
    AutotagRequest,
    EmbedRequest,
    JobPublic,
    JobSubmitted,
    ProposalDecision,
    ProposalReport,
    input_error,
)

JobRequest = TypeVar("JobRequest", AutotagRequest, AutoAnnotateRequest, EmbedRequest)


class JobTimeout(MetaLakeError):
    """wait_for_job gave up before the job finished (the job goes on)."""


def _model(model_id: str | None, model_name: str | None) -> str:
    if model_name is not None and model_id not in (None, "default", model_name):
        raise BadRequest(
            f"model_id {model_id!r} and model_name {model_name!r} differ; they are "
            "two names for one argument: pass one.",
            code="invalid_input",
        )
    return model_name or model_id or "default"


def _request(model: type[JobRequest], fields: dict[str, Any]) -> JobRequest:
    """The request, its refused parameters raised as the engine would answer them: BadRequest
    with the parameter's code and message, or ValidationFailed for a malformed one."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        refused = input_error(exc.errors())
        if refused is not None:
            code, message, details = refused
            raise BadRequest(message, code=code, status=400, details=details) from exc
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationFailed(
            f"Invalid arguments: {problems}.", code="validation_error", status=422
        ) from exc


class JobCalls(BaseClient):
    def _submit(self, path: str, model: type[JobRequest], **fields: Any) -> dict[str, Any]:
        body = _request(model, fields).model_dump(mode="json")
        return JobSubmitted.model_validate(self._post(path, json=body)).model_dump()

    # -- autotagging (7.2, 7.3) ------------------------------------------------------------------
    def auto_tag_collection(
        self,
        collection_id: str | int,
        model_id: str = "default",
        input_resolution: Sequence[int] = (300, 300),
        confidence_threshold: float = 0.5,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        inference_platform: str = "use_env",
        *,
        model_name: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Tag the collection's files (narrowed by `query` and `filter`) with an autotagging
        model: one tag per label per file and machine boxes, at or above the threshold."""
        return self._submit(
            "/jobs/autotag",
            AutotagRequest,
            collection_id=collection_id,
            model_id=_model(model_id, model_name),
            input_resolution=input_resolution,
            confidence_threshold=confidence_threshold,
            query=query,
            filter=either(filter, filters, ("filter", "filters")),
            inference_platform=inference_platform,
        )

    def generate_auto_tags_to_metalake(
        self,
        content_type: str | None = None,
        model_id: str = "default",
        input_resolution: Sequence[int] = (300, 300),
        confidence_threshold: float = 0.5,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        inference_platform: str = "use_env",
        *,
        model_name: str | None = None,
        filters: dict[str, Any] | None = None,
        item_type: str | None = None,
    ) -> dict[str, Any]:
        """Tag every `content_type` ('image' or 'video') file of the lake matching the query."""
        return self._submit(
            "/jobs/autotag",
            AutotagRequest,
            content_type=either(content_type, item_type, ("content_type", "item_type"), None),
            model_id=_model(model_id, model_name),
            input_resolution=input_resolution,
            confidence_threshold=confidence_threshold,
            query=query,
            filter=either(filter, filters, ("filter", "filters")),
            inference_platform=inference_platform,
        )

    # -- embeddings (7.4, 7.5): submission; vectors are stored by the engine -----------------------
    def generate_embeddings_for_collection(
        self,
        collection_id: str | int,
        model_id: str = "default",
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        inference_platform: str = "use_env",
        *,
        model_name: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compute one embedding per selected image of the collection (default: ResNet50)."""
        return self._submit(
            "/jobs/embed",
            EmbedRequest,
            collection_id=collection_id,
            model_id=_model(model_id, model_name),
            query=query,
            filter=either(filter, filters, ("filter", "filters")),
            inference_platform=inference_platform,
        )

    def generate_embeddings_to_metalake(
        self,
        content_type: str | None = None,
        model_id: str = "default",
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        inference_platform: str = "use_env",
        *,
        model_name: str | None = None,
        filters: dict[str, Any] | None = None,
        item_type: str | None = None,
    ) -> dict[str, Any]:
        return self._submit(
            "/jobs/embed",
            EmbedRequest,
            content_type=either(content_type, item_type, ("content_type", "item_type"), "image"),
            model_id=_model(model_id, model_name),
            query=query,
            filter=either(filter, filters, ("filter", "filters")),
            inference_platform=inference_platform,
        )

    # -- auto-annotation -------------------------------------------------------------------------
    def auto_annotate_collection(
        self,
        collection_id: str | int,
        model_id: str = "default",
        prompt: list[dict[str, str] | str] | None = None,
        annotation_type: str = "polygon",
        confidence_threshold: float = 0.5,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        inference_platform: str = "use_env",
        preview: bool = False,
        *,
        model_name: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Annotate the prompted labels (boxes, or polygons from masks) as machine annotations;
        `preview=True` proposes them (accept_proposals / reject_proposals)."""
        return self._submit(
            "/jobs/auto-annotate",
            AutoAnnotateRequest,
            collection_id=collection_id,
            model_id=_model(model_id, model_name),
            prompt=prompt,
            annotation_type=annotation_type,
            confidence_threshold=confidence_threshold,
            query=query,
            filter=either(filter, filters, ("filter", "filters")),
            inference_platform=inference_platform,
            preview=preview,
        )

    def generate_auto_annotations_to_metalake(
        self,
        content_type: str | None = None,
        model_id: str = "default",
        prompt: list[dict[str, str] | str] | None = None,
        annotation_type: str = "polygon",
        confidence_threshold: float = 0.5,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        inference_platform: str = "use_env",
        preview: bool = False,
        *,
        model_name: str | None = None,
        filters: dict[str, Any] | None = None,
        item_type: str | None = None,
    ) -> dict[str, Any]:
        return self._submit(
            "/jobs/auto-annotate",
            AutoAnnotateRequest,
            content_type=either(content_type, item_type, ("content_type", "item_type"), None),
            model_id=_model(model_id, model_name),
            prompt=prompt,
            annotation_type=annotation_type,
            confidence_threshold=confidence_threshold,
            query=query,
            filter=either(filter, filters, ("filter", "filters")),
            inference_platform=inference_platform,
            preview=preview,
        )

    def accept_proposals(
        self, job_id: int, unique_names: list[str] | None = None
    ) -> dict[str, Any]:
        """Apply a preview job's proposed annotations (all, or those of the named files)."""
        body = ProposalDecision(unique_names=unique_names).model_dump(mode="json")
        return ProposalReport.model_validate(
            self._post(f"/jobs/{int(job_id)}/proposals/accept", json=body)
        ).model_dump()

    def reject_proposals(
        self, job_id: int, unique_names: list[str] | None = None
    ) -> dict[str, Any]:
        """Delete a preview job's proposed annotations (all, or those of the named files)."""
        body = ProposalDecision(unique_names=unique_names).model_dump(mode="json")
        return ProposalReport.model_validate(
            self._post(f"/jobs/{int(job_id)}/proposals/reject", json=body)
        ).model_dump()

    # -- jobs ------------------------------------------------------------------------------------
    def get_job(self, job_id: int) -> dict[str, Any]:
        """Status, counters (`total`, `done`, `failed`) and failed items with their reasons."""
        return JobPublic.model_validate(self._get(f"/jobs/{int(job_id)}")).model_dump()

    def list_jobs(
        self, status: str | None = None, kind: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        params = {
            k: v
            for k, v in {"status": status, "kind": kind, "limit": limit}.items()
            if v is not None
        }
        return [JobPublic.model_validate(j).model_dump() for j in self._get("/jobs", params=params)]

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        """Stop the job: chunks not started do nothing."""
        return JobPublic.model_validate(self._post(f"/jobs/{int(job_id)}/cancel")).model_dump()

    def retry_failed(self, job_id: int) -> dict[str, Any]:
        """Run a finished job's failed items again (only those)."""
        return JobPublic.model_validate(self._post(f"/jobs/{int(job_id)}/retry")).model_dump()

    def resume_job(self, job_id: int) -> dict[str, Any]:
        """Send again the work an unfinished job still has (its planning, or its chunks with
        pending items that no live worker holds), e.g. after the broker restarted without its
        queue. Safe to call at any time: no item is processed twice. A finished job is returned
        as it is (use retry_failed for its failed items)."""
        return JobPublic.model_validate(self._post(f"/jobs/{int(job_id)}/resume")).model_dump()

    def wait_for_job(
        self,
        job_id: int,
        timeout: float | None = None,
        *,
        poll_interval: float = 1.0,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Block until the job finishes, showing a progress bar; returns the final job.

        Each request is held by the server until the job finishes or `poll_interval` seconds
        pass (`GET /jobs/{id}?wait=`), so the end is seen within ~0.1 s whatever the interval:
        `poll_interval` sets how often the progress bar is brought up to date.
        Raises `JobTimeout` after `timeout` seconds (the job goes on; wait again or cancel).
        """
        from tqdm.auto import tqdm

        hold = min(max(float(poll_interval), 0.1), MAX_JOB_WAIT)
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get_job(job_id)
        with tqdm(
            total=job["total"] or None,
            desc=f"job {job_id} ({job['kind']})",
            unit="file",
            disable=not progress,
        ) as bar:
            while True:
                if job["total"] and bar.total != job["total"]:
                    bar.total = job["total"]
                bar.n = job["done"] + job["failed"]
                bar.set_postfix(status=job["status"], failed=job["failed"], refresh=False)
                bar.refresh()
                if job["status"] in FINISHED_JOB_STATUSES:
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise JobTimeout(
                        f"Job {job_id} is still {job['status']} after {timeout:g} s "
                        f"({job['done'] + job['failed']} of {job['total']} files); it goes on: "
                        "wait_for_job again, or cancel_job.",
                        code="job_timeout",
                        details={"job_id": job_id, "status": job["status"]},
                    )
                wait = hold if left is None else min(hold, left)
                job = JobPublic.model_validate(
                    self._get(f"/jobs/{int(job_id)}", params={"wait": round(wait, 3)})
                ).model_dump()
