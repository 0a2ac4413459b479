"""Lake calls: upload, item lists, file and collection details, file metadata.

Names and parameter order follow the metadata-lake SDK these calls come from, so its scripts
keep working.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from pydantic import ValidationError

from sdk._base import BaseClient, either
from sdk._layernext_spellings import sort_fields
from sdk.errors import BadRequest, MetaLakeError, ValidationFailed
from sdk.schemas import (
    CollectionCreate,
    CollectionPublic,
    ContentType,
    IngestEntry,
    IngestJobPublic,
    IngestReport,
    IngestRequest,
    ItemPublic,
    ItemQuery,
    Page,
    StorageInfo,
)
from sdk.schemas_trash import TrashReport, TrashRequest

log = logging.getLogger("sdk.lake")

CONTENT_TYPES = ("image", "video")
KIND = ("item_type", "content_type")  # one argument's two spellings
# Hidden files and folders (`.x`, macOS `._x`) are skipped by the leading dot; these too.
SYSTEM_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
SYSTEM_DIR_NAMES = frozenset({"__macosx", "$recycle.bin"})
MAX_BATCH_FILES = 5000  # IngestRequest.entries' limit
MAX_UPLOAD_BYTES = 64 << 20  # per multipart request (a larger single file goes alone)
INGEST_TIMEOUT = httpx.Timeout(30.0, read=3600.0)  # the engine hashes and probes every file
INGEST_JOB_POLL_SECONDS = 1.0


def _query(**fields: Any) -> ItemQuery:
    """An `ItemQuery`, with bad arguments raised as the SDK's `ValidationFailed`."""
    try:
        return ItemQuery(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationFailed(
            f"Invalid arguments: {problems}.", code="validation_error", status=422
        ) from exc


def _content_type(value: str | None, what: str) -> ContentType:
    if value not in CONTENT_TYPES:
        raise BadRequest(f"{what} must be 'image' or 'video', not {value!r}.", code="invalid_input")
    return cast(ContentType, value)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_FILE_NAMES


def _keep(record: dict[str, Any], fields_filter: Sequence[str] | None) -> dict[str, Any]:
    if fields_filter is None:
        return record
    if isinstance(fields_filter, str):
        fields_filter = [fields_filter]
    unknown = [f for f in fields_filter if f not in record]
    if unknown:
        raise BadRequest(
            f"Unknown field(s) {unknown} in fields_filter; available: {sorted(record)}.",
            code="invalid_fields_filter",
        )
    return {k: record[k] for k in fields_filter}


@dataclass
class _Scan:
    """What a local upload will send: (absolute path, relative path) pairs, and what it skipped."""

    files: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    other_kind: int = 0


def _scan(path: str | os.PathLike[str], content_type: str, info: StorageInfo) -> _Scan:
    root = Path(path).expanduser()
    if not root.exists():
        where = "" if root.is_absolute() else f" (relative to {Path.cwd()})"
        raise BadRequest(
            f"{str(path)!r} does not exist{where}; pass a folder, a file or an s3://bucket/prefix.",
            code="invalid_path",
        )
    media = {"image": set(info.image_extensions), "video": set(info.video_extensions)}
    wanted = media[content_type]
    other = media["video" if content_type == "image" else "image"]
    root = Path(os.path.abspath(root))
    scan = _Scan()
    if root.is_file():
        suffix = root.suffix.lower()
        if _ignored(root.name) or suffix not in wanted:
            raise BadRequest(
                f"{str(path)!r} is not an {content_type} file ({content_type} extensions: "
                f"{', '.join(sorted(wanted))}).",
                code="invalid_path",
            )
        scan.files.append((str(root), root.name))
        return scan
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d.lower() not in SYSTEM_DIR_NAMES
        )
        for name in sorted(names):
            suffix = os.path.splitext(name)[1].lower()
            if _ignored(name) or (suffix not in wanted and suffix not in other):
                scan.skipped += 1
                continue
            scan.other_kind += suffix in other
            full = os.path.join(folder, name)
            scan.files.append((full, Path(os.path.relpath(full, root)).as_posix()))
    if len(scan.files) == scan.other_kind:
        hint = (
            (
                f"; it holds {scan.other_kind} {'video' if content_type == 'image' else 'image'} "
                "file(s): upload those with the other content_type"
            )
            if scan.other_kind
            else ""
        )
        raise BadRequest(
            f"No {content_type} files under {str(path)!r} ({content_type} extensions: "
            f"{', '.join(sorted(wanted))}; {scan.skipped} other or hidden file(s) skipped)"
            f"{hint}.",
            code="empty_folder",
        )
    return scan


def _batches(
    files: list[tuple[str, str]], size: int, max_bytes: int | None
) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    batch_bytes = 0
    for entry in files:
        entry_bytes = os.path.getsize(entry[0]) if max_bytes else 0
        if batch and (len(batch) >= size or (max_bytes and batch_bytes + entry_bytes > max_bytes)):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(entry)
        batch_bytes += entry_bytes
    if batch:
        yield batch


def _merge(reports: list[IngestReport]) -> IngestReport:
    return IngestReport(
        collection_id=reports[0].collection_id,
        added=sum(r.added for r in reports),
        updated=sum(r.updated for r in reports),
        unchanged=sum(r.unchanged for r in reports),
        failed=[f for r in reports for f in r.failed],
    )


class LakeCalls(BaseClient):
    last_upload_report: IngestReport | None = None
    """The report of the last `upload_files_to_collection`: added / updated / unchanged / failed."""

    # -- upload ----------------------------------------------------------------------------------
    def upload_files_to_collection(
        self,
        path: str | os.PathLike[str],
        content_type: str,
        collection_name: str,
        meta_data_object: dict[str, Any] | None = None,
    ) -> int:
        """Add a folder (recursively), a single file or an `s3://bucket/prefix` to a collection.

        The collection is created if new; an existing one (same content type) is added to.
        Files are registered where they are (the engine must be able to read them), or copied
        when the engine has managed storage. An S3 prefix holding more objects than the engine
        lists in one request is ingested by a background job, followed here until it ends.
        Re-uploading the same files adds nothing. Files that could not be registered are
        summarised in a warning and listed on `client.last_upload_report.failed`. Returns the
        collection id.
        """
        kind = _content_type(content_type, "content_type")
        metadata = dict(meta_data_object or {})
        info = StorageInfo.model_validate(self._get("/storage"))
        if str(path).startswith("s3://"):
            request = IngestRequest(
                collection_name=collection_name,
                content_type=kind,
                s3_uri=str(path),
                metadata=metadata,
            )
            body = self._post(
                "/collections/ingest",
                json=request.model_dump(mode="json"),
                timeout=httpx.Timeout(30.0, read=None),
            )
            if "status" in body:  # 202: a prefix too large for one request, ingested by a job
                report = self._follow_ingest_job(
                    IngestJobPublic.model_validate(body), collection_name
                )
            else:
                report = IngestReport.model_validate(body)
            total = report.added + report.updated + report.unchanged + len(report.failed)
        else:
            scan = _scan(path, content_type, info)
            if scan.skipped:
                log.info(
                    "Skipped %d hidden, system or non-media file(s) under %s", scan.skipped, path
                )
            report = self._upload_local(scan.files, kind, collection_name, metadata, info)
            total = len(scan.files)
        self.last_upload_report = report
        if report.failed:
            examples = "; ".join(f"{f.path}: {f.reason}" for f in report.failed[:3])
            warnings.warn(
                f"{len(report.failed)} of {total} file(s) were not registered in "
                f"{collection_name!r} (e.g. {examples}). All are listed on "
                "client.last_upload_report.failed.",
                stacklevel=2,
            )
        return report.collection_id

    def _follow_ingest_job(self, job: IngestJobPublic, collection_name: str) -> IngestReport:
        """Wait for a background ingest, showing its progress; its report once it succeeded."""
        from tqdm.auto import tqdm

        with tqdm(unit="file", desc=f"Ingesting {job.s3_uri} into {collection_name}") as bar:
            while job.status in ("queued", "running"):
                time.sleep(INGEST_JOB_POLL_SECONDS)
                job = IngestJobPublic.model_validate(
                    self._get(f"/collections/ingest-jobs/{_segment(job.id)}")
                )
                bar.total = job.listed
                bar.update(job.done - bar.n)
        if job.status == "failed":
            raise MetaLakeError(
                f"The background ingest of {job.s3_uri} failed after {job.done} file(s): "
                f"{job.error}",
                code="ingest_job_failed",
                details={"job_id": job.id},
            )
        return job.report

    def _upload_local(
        self,
        files: list[tuple[str, str]],
        content_type: ContentType,
        collection_name: str,
        metadata: dict[str, Any],
        info: StorageInfo,
    ) -> IngestReport:
        from tqdm.auto import tqdm

        size = min(max(1, info.ingest_batch_size), MAX_BATCH_FILES)
        batches = list(_batches(files, size, MAX_UPLOAD_BYTES if info.managed else None))
        reports: list[IngestReport] = []
        done = 0
        with tqdm(
            total=len(files),
            unit="file",
            desc=f"Uploading to {collection_name}",
            disable=len(batches) <= 1,
        ) as bar:
            for batch in batches:
                try:
                    if info.managed:
                        reports.append(
                            self._send_multipart(batch, content_type, collection_name, metadata)
                        )
                    else:
                        reports.append(
                            self._send_paths(batch, content_type, collection_name, metadata)
                        )
                except MetaLakeError as exc:
                    if not done:
                        raise
                    raise type(exc)(
                        f"{exc.message} ({done} of {len(files)} files were registered before "
                        "this; re-running the same upload is safe and adds only the rest)",
                        code=exc.code,
                        status=exc.status,
                        details=exc.details,
                    ) from exc
                done += len(batch)
                bar.update(len(batch))
        return _merge(reports)

    def _send_paths(
        self,
        batch: list[tuple[str, str]],
        content_type: ContentType,
        collection_name: str,
        metadata: dict[str, Any],
    ) -> IngestReport:
        request = IngestRequest(
            collection_name=collection_name,
            content_type=content_type,
            metadata=metadata,
            entries=[IngestEntry(path=p, relative_path=r) for p, r in batch],
        )
        return IngestReport.model_validate(
            self._post(
                "/collections/ingest", json=request.model_dump(mode="json"), timeout=INGEST_TIMEOUT
            )
        )

    def _send_multipart(
        self,
        batch: list[tuple[str, str]],
        content_type: str,
        collection_name: str,
        metadata: dict[str, Any],
    ) -> IngestReport:
        with ExitStack() as stack:
            files = [
                (
                    "files",
                    (
                        os.path.basename(relative),
                        stack.enter_context(open(path, "rb")),
                        mimetypes.guess_type(path)[0] or "application/octet-stream",
                    ),
                )
                for path, relative in batch
            ]
            body = self._post(
                f"/collections/{collection_name}/upload",
                params={"content_type": content_type},
                files=files,
                timeout=INGEST_TIMEOUT,
                data={"relative_paths": [r for _, r in batch], "metadata": json.dumps(metadata)},
            )
        return IngestReport.model_validate(body)

    # -- collections -----------------------------------------------------------------------------
    def create_collection(self, collection_name: str, content_type: str) -> dict[str, Any]:
        """Create an empty collection (409 Conflict if the name is taken)."""
        body = CollectionCreate(
            name=collection_name, content_type=_content_type(content_type, "content_type")
        )
        created = self._post("/collections", json=body.model_dump())
        return CollectionPublic.model_validate(created).model_dump(mode="json")

    def get_collection_details(
        self, collection_id: int, fields_filter: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """id, name, content_type, created_at and file_count; `fields_filter` keeps those keys."""
        found = CollectionPublic.model_validate(self._get(f"/collections/{int(collection_id)}"))
        return _keep(found.model_dump(mode="json"), fields_filter)

    # -- items -----------------------------------------------------------------------------------
    def _search(self, search: ItemQuery) -> Page[ItemPublic]:
        body = self._post("/items/search", json=search.model_dump(mode="json"))
        return Page[ItemPublic].model_validate(body)

    def get_item_list_from_datalake(
        self,
        item_type: str = "image",
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        page_index: int = 0,
        page_size: int = 20,
        sort_order: dict[str, Any] | None = None,
        *,
        content_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of the lake's files of `item_type` (alias `content_type`) matching `query`
        and `filter`: dicts with `id`, `name`, `uniqueName`, `url`, metadata, tags and
        annotations (page_size <= 1000). `sort_order`: `{"sort_by_field": "date_created" |
        "date_modified" | "name" | "size", "sort_order": "ASC" | "DESC"}` (default: the order
        files were registered in)."""
        kind = either(None if item_type == "image" else item_type, content_type, KIND, "image")
        page = self._search(
            _query(
                query=query,
                filter=filter,
                content_type=_content_type(kind, "item_type"),
                page_index=page_index,
                page_size=page_size,
                **sort_fields(sort_order),
            )
        )
        return [item.model_dump(by_alias=True, mode="json") for item in page.items]

    def get_item_list_from_collection(
        self,
        collection_id: int,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        page_index: int = 0,
        page_size: int = 20,
        sort_order: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """One page of a collection's files (see `get_item_list_from_datalake`)."""
        page = self._search(
            _query(
                query=query,
                filter=filter,
                collection_id=collection_id,
                page_index=page_index,
                page_size=page_size,
                **sort_fields(sort_order),
            )
        )
        return [item.model_dump(by_alias=True, mode="json") for item in page.items]

    def iter_items(
        self,
        item_type: str = "image",
        collection_id: int | None = None,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        page_size: int = 200,
        *,
        content_type: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching file, page after page. With `collection_id`, the collection's own
        content type applies and `item_type` (alias `content_type`) is ignored."""
        item_type = either(None if item_type == "image" else item_type, content_type, KIND, "image")
        page_index = 0
        while True:
            page = self._search(
                _query(
                    query=query,
                    filter=filter,
                    collection_id=collection_id,
                    content_type=(
                        None if collection_id is not None else _content_type(item_type, "item_type")
                    ),
                    page_index=page_index,
                    page_size=page_size,
                )
            )
            for item in page.items:
                yield item.model_dump(by_alias=True, mode="json")
            page_index += 1
            if not page.items or page_index * page_size >= page.total:
                return

    def trash_items(
        self,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        collection_id: int | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Take the files `query` and `filter` select (in `collection_id`, of `content_type`)
        out of the lake, with their annotations, tags and vectors; managed bytes no other file
        shares are removed. Refused (Conflict) for files an unfinished job or a dataset version
        holds, and for an empty selection. Returns `trashed`, `unique_names` and
        `stored_bytes_removed`."""
        try:
            request = TrashRequest(
                query=query, filter=filter, collection_id=collection_id, content_type=content_type
            )
        except ValidationError as exc:
            raise BadRequest(
                "; ".join(e["msg"] for e in exc.errors()), code="invalid_input"
            ) from exc
        body = self._post("/items/trash", json=request.model_dump(mode="json"))
        return TrashReport.model_validate(body).model_dump()

    def get_file_details(
        self, unique_name: str, fields_filter: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """A file by unique name (NotFound if unknown); `fields_filter` keeps those keys."""
        item = ItemPublic.model_validate(self._get(f"/files/{_segment(unique_name)}"))
        return _keep(item.model_dump(by_alias=True, mode="json"), fields_filter)

    def update_file_metadata(self, unique_name: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Merge `metadata` into the file's; a None value removes that key. Returns the file."""
        item = ItemPublic.model_validate(
            self._patch(f"/files/{_segment(unique_name)}/metadata", json={"metadata": metadata})
        )
        return item.model_dump(by_alias=True, mode="json")


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
