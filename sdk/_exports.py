"""Exports and datasets: `export_collection`, `export_datalake`, `create_dataset_from_*`,
`download_dataset`.

An export arrives as a zip, streamed at once for a small selection or built by an export job
for a large one; either way it is written to a temporary file beside the destination,
extracted there, and only then moved into place, so a failure leaves the destination as it was.
A destination that exists must be empty or an earlier export (it holds `MARKER`), which is
replaced whole. docs/exports.md.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from sdk._base import BaseClient
from sdk.errors import BadRequest, EngineUnreachable, MetaLakeError, NotFound, error_for
from sdk.schemas import FINISHED_JOB_STATUSES, MAX_JOB_WAIT, JobPublic, JobStatus, JobSubmitted
from sdk.schemas_exports import DatasetVersionPublic

PathLike = str | os.PathLike[str]
MARKER = ".metalake-export.json"
CHUNK = 1 << 16
PROGRESS_WAIT = min(1.0, MAX_JOB_WAIT)  # seconds the engine holds each job poll


def _check_destination(destination: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise BadRequest(f"{str(destination)!r} is a file; name a folder.", code="invalid_path")
    if destination.is_dir() and any(destination.iterdir()) and not (destination / MARKER).is_file():
        raise BadRequest(
            f"{str(destination)!r} is not empty and is not an earlier export (it has no "
            f"{MARKER}); name a new or empty folder. An earlier export is replaced whole.",
            code="destination_not_empty",
        )


def _members(archive: zipfile.ZipFile) -> list[str]:
    names = [info.filename for info in archive.infolist() if not info.is_dir()]
    for name in names:
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or "\\" in name:
            raise MetaLakeError(f"The export holds an unsafe path {name!r}; nothing was written.")
    return names


def _raise_for(response: httpx.Response) -> None:
    if response.is_error:
        response.read()
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_for(response.status_code, body)


def _no_operations(operation_list: object, augmentation_list: object) -> None:
    if operation_list is not None or augmentation_list is not None:
        raise BadRequest(
            "This engine makes datasets without operations or augmentations; leave "
            "operation_list and augmentation_list out.",
            code="invalid_input",
        )


def _dataset_body(
    scope: dict[str, Any],
    split_info: Mapping[str, float],
    labels: Sequence[str],
    export_types: Sequence[str],
    query: str,
    filter: Mapping[str, Any] | None,
    split_unit: str,
    sources: Sequence[str],
) -> dict[str, Any]:
    return {
        **scope,
        "split_info": dict(split_info),
        "split_unit": split_unit,
        "labels": list(labels),
        "export_types": list(export_types),
        "query": query or None,
        "filter": dict(filter) if filter else None,
        "sources": list(sources),
    }


def _success(body: Any) -> dict[str, Any]:
    version = DatasetVersionPublic.model_validate(body).model_dump(mode="json")
    return {"isSuccess": True, **version}


class ExportCalls(BaseClient):
    def export_collection(
        self,
        collection_id: int,
        format: str,
        destination: PathLike,
        query: str = "",
        filter: Mapping[str, Any] | None = None,
        include_media: bool = True,
        sources: Sequence[str] = ("human", "machine"),
        include_proposals: bool = False,
        yolo_task: str = "detect",
        *,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Export a collection's images and annotations in `format` (coco, yolo, voc,
        label_studio, metalake_json, annotated) into the folder `destination`.

        `query` / `filter` narrow the selection as in `get_item_list_from_collection`;
        `sources` keeps human and/or machine annotations; a preview job's proposals are left
        out unless `include_proposals`. Returns `{"destination", "format", "items",
        "annotations", "files", "job_id"}` (`job_id` is None when the export streamed at once).
        """
        body = {"collection_id": int(collection_id)}
        return self._export(
            body, format, destination, query, filter, include_media, sources,
            include_proposals, yolo_task, progress,
        )  # fmt: skip

    def export_datalake(
        self,
        content_type: str,
        format: str,
        destination: PathLike,
        query: str = "",
        filter: Mapping[str, Any] | None = None,
        include_media: bool = True,
        sources: Sequence[str] = ("human", "machine"),
        include_proposals: bool = False,
        yolo_task: str = "detect",
        *,
        progress: bool = True,
    ) -> dict[str, Any]:
        """`export_collection` over the whole lake's files of `content_type` ("image" or
        "video"); files are named by their unique names."""
        return self._export(
            {"content_type": content_type}, format, destination, query, filter, include_media,
            sources, include_proposals, yolo_task, progress,
        )  # fmt: skip

    # -- datasets (LayerNext's names) -----------------------------------------------------------
    def create_dataset_from_collection(
        self,
        dataset_name: str,
        collection_id: int,
        split_info: Mapping[str, float],
        labels: Sequence[str] = (),
        export_types: Sequence[str] = (),
        query: str = "",
        filter: Mapping[str, Any] | None = None,
        operation_list: None = None,
        augmentation_list: None = None,
        *,
        split_unit: str = "auto",
        sources: Sequence[str] = ("human", "machine"),
    ) -> dict[str, Any]:
        """A new dataset from a collection's files (narrowed by `query` / `filter`), split by
        `split_info` (`{"train": 80, "validation": 10, "test": 10}`: percentages when they
        add up to 100, else file counts; `split_unit="count"` / `"percent"` says which).
        `labels` keeps only those labels' annotations. Returns the version: `version_id`,
        `items`, `annotations`, `splits`, ... and `isSuccess` (errors raise)."""
        _no_operations(operation_list, augmentation_list)
        body = _dataset_body(
            {"collection_id": int(collection_id), "dataset_name": dataset_name},
            split_info, labels, export_types, query, filter, split_unit, sources,
        )  # fmt: skip
        return _success(self._post("/datasets", json=body))

    def create_dataset_from_datalake(
        self,
        dataset_name: str,
        split_info: Mapping[str, float],
        labels: Sequence[str] = (),
        export_types: Sequence[str] = (),
        item_type: str = "image",
        query: str = "",
        filter: Mapping[str, Any] | None = None,
        operation_list: None = None,
        augmentation_list: None = None,
        *,
        split_unit: str = "auto",
        sources: Sequence[str] = ("human", "machine"),
    ) -> dict[str, Any]:
        """`create_dataset_from_collection` over the whole lake's files of `item_type`."""
        _no_operations(operation_list, augmentation_list)
        body = _dataset_body(
            {"content_type": item_type, "dataset_name": dataset_name},
            split_info, labels, export_types, query, filter, split_unit, sources,
        )  # fmt: skip
        return _success(self._post("/datasets", json=body))

    def update_dataset_version_from_collection(
        self,
        version_id: int,
        collection_id: int,
        split_info: Mapping[str, float],
        labels: Sequence[str] = (),
        export_types: Sequence[str] = (),
        query: str = "",
        filter: Mapping[str, Any] | None = None,
        is_new_version_required: bool = True,
        operation_list: None = None,
        augmentation_list: None = None,
        *,
        split_unit: str = "auto",
        sources: Sequence[str] = ("human", "machine"),
    ) -> dict[str, Any]:
        """A new version of `version_id`'s dataset from a collection. Versions are frozen
        snapshots, so an update always adds a version (`is_new_version_required` is accepted
        for compatibility); the earlier versions stay as they were."""
        _no_operations(operation_list, augmentation_list)
        body = _dataset_body(
            {"collection_id": int(collection_id)},
            split_info, labels, export_types, query, filter, split_unit, sources,
        )  # fmt: skip
        return _success(self._post(f"/dataset-versions/{int(version_id)}/versions", json=body))

    def update_dataset_version_from_datalake(
        self,
        version_id: int,
        split_info: Mapping[str, float],
        labels: Sequence[str] = (),
        export_types: Sequence[str] = (),
        item_type: str = "image",
        query: str = "",
        filter: Mapping[str, Any] | None = None,
        is_new_version_required: bool = True,
        operation_list: None = None,
        augmentation_list: None = None,
        *,
        split_unit: str = "auto",
        sources: Sequence[str] = ("human", "machine"),
    ) -> dict[str, Any]:
        """`update_dataset_version_from_collection` over the whole lake's files of
        `item_type`."""
        _no_operations(operation_list, augmentation_list)
        body = _dataset_body(
            {"content_type": item_type},
            split_info, labels, export_types, query, filter, split_unit, sources,
        )  # fmt: skip
        return _success(self._post(f"/dataset-versions/{int(version_id)}/versions", json=body))

    def get_dataset_version(self, version_id: int) -> dict[str, Any]:
        found = self._get(f"/dataset-versions/{int(version_id)}")
        return DatasetVersionPublic.model_validate(found).model_dump(mode="json")

    def delete_dataset_version(self, version_id: int) -> dict[str, Any]:
        """Delete a version (and its dataset, when it was the last one)."""
        self._delete(f"/dataset-versions/{int(version_id)}")
        return {"isSuccess": True, "version_id": int(version_id)}

    def download_dataset(
        self,
        version_id: int,
        export_type: str,
        custom_download_path: PathLike | None = None,
        is_media_include: bool = True,
        *,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Write a dataset version in `export_type` (coco, yolo, voc, ...) with its splits,
        into `custom_download_path` (default `./<dataset>_v<version>_<export_type>`).
        Returns the export report (`destination`, `items`, `annotations`, `files`)."""
        version = self.get_dataset_version(version_id)
        destination = custom_download_path or Path(
            f"{version['dataset_name']}_v{version['version']}_{export_type}"
        )
        return self._export(
            {"dataset_version_id": int(version_id)}, export_type, destination, "", None,
            is_media_include, ("human", "machine"), False, "detect", progress,
        )  # fmt: skip

    # -- lookups ----------------------------------------------------------------------------------
    def collection_id(self, name_or_id: str | int) -> int:
        """A collection's id from its id or its name (404 when no collection has it)."""
        text = str(name_or_id)
        if text.isdigit():
            return int(text)
        page_index = 0
        while True:
            page = self._get("/collections", params={"page_index": page_index, "page_size": 100})
            for found in page["items"]:
                if found["name"] == text:
                    return int(found["id"])
            page_index += 1
            if not page["items"] or page_index * 100 >= page["total"]:
                raise NotFound(
                    f"No collection is named {text!r}; check the name, or pass its id.",
                    code="collection_not_found",
                )

    # -- the transfer ---------------------------------------------------------------------------
    def _export(
        self,
        scope: dict[str, Any],
        format: str,
        destination: PathLike,
        query: str,
        filter: Mapping[str, Any] | None,
        include_media: bool,
        sources: Sequence[str],
        include_proposals: bool,
        yolo_task: str,
        progress: bool,
    ) -> dict[str, Any]:
        target = Path(destination).expanduser().absolute()
        _check_destination(target)
        body = {
            **scope,
            "format": format,
            "query": query or None,
            "filter": dict(filter) if filter else None,
            "include_media": include_media,
            "sources": list(sources),
            "include_proposals": include_proposals,
            "yolo_task": yolo_task,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".metalake-export-", dir=target.parent) as tmp:
            archive = Path(tmp) / "export.zip"
            job_id, items, annotations = self._fetch(body, archive, progress)
            out = Path(tmp) / "out"
            try:
                with zipfile.ZipFile(archive) as opened:
                    names = _members(opened)
                    opened.extractall(out)
            except zipfile.BadZipFile as exc:
                raise MetaLakeError(
                    f"The export arrived incomplete ({exc}); nothing was written. Run the "
                    "call again; the engine's log says why it stopped."
                ) from exc
            report = {
                "destination": str(target),
                "format": format,
                "items": items,
                "annotations": annotations,
                "files": len(names),
                "job_id": job_id,
            }
            out.mkdir(exist_ok=True)
            (out / MARKER).write_text(json.dumps(report, indent=2), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            out.rename(target)
        return report

    def _fetch(
        self, body: dict[str, Any], archive: Path, progress: bool
    ) -> tuple[int | None, int, int]:
        """Write the export's zip to `archive`: (job id or None, items, annotations)."""
        try:
            with self._http.stream("POST", "/exports", json=body) as response:
                _raise_for(response)
                if response.status_code == 202:
                    response.read()
                    job = JobSubmitted.model_validate(response.json())
                    self._wait_export(job.job_id, progress)
                    path = f"/exports/{job.job_id}/download"
                    with self._http.stream("GET", path) as download:
                        _raise_for(download)
                        items, annotations = self._save(download, archive, progress)
                    return job.job_id, items, annotations
                items, annotations = self._save(response, archive, progress)
                return None, items, annotations
        except httpx.TransportError as exc:
            raise EngineUnreachable(
                f"Lost the engine at {self.url} during the export: {exc}. Nothing was "
                "written; run the call again."
            ) from exc

    def _save(self, response: httpx.Response, archive: Path, progress: bool) -> tuple[int, int]:
        from tqdm.auto import tqdm

        items = int(response.headers.get("x-export-items", "0"))
        annotations = int(response.headers.get("x-export-annotations", "0"))
        length = response.headers.get("content-length")
        with (
            archive.open("wb") as handle,
            tqdm(
                total=int(length) if length else None,
                desc=f"export ({items} files)",
                unit="B",
                unit_scale=True,
                disable=not progress,
            ) as bar,
        ):
            try:
                for chunk in response.iter_bytes(CHUNK):
                    handle.write(chunk)
                    bar.update(len(chunk))
            except httpx.TransportError as exc:
                raise MetaLakeError(
                    f"The export stopped before its end ({exc}); nothing was written. The "
                    "engine's log says why (e.g. a file changed or gone since ingest); fix it "
                    "or narrow the selection, and run the call again."
                ) from exc
        return items, annotations

    def _wait_export(self, job_id: int, progress: bool) -> None:
        """Follow the export job with a progress bar until it finishes; raise if it failed."""
        from tqdm.auto import tqdm

        job = JobPublic.model_validate(self._get(f"/jobs/{job_id}"))
        with tqdm(
            total=job.total or None, desc=f"export job {job_id}", unit="file", disable=not progress
        ) as bar:
            while job.status not in FINISHED_JOB_STATUSES:
                bar.total = job.total or bar.total
                bar.n = job.done
                bar.refresh()
                started = time.monotonic()
                job = JobPublic.model_validate(
                    self._get(f"/jobs/{job_id}", params={"wait": PROGRESS_WAIT})
                )
                if time.monotonic() - started < 0.05:  # an engine that does not hold requests
                    time.sleep(0.5)
            bar.n = job.done
            bar.refresh()
        if job.status != JobStatus.SUCCEEDED:
            raise MetaLakeError(
                f"Export job {job_id} {job.status}: {job.error or 'no reason recorded'}; "
                "nothing was written."
            )
