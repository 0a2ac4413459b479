"""LayerNext's data lake calls: upload, collections, file and collection details, system
counts (item lists, downloads and the trash are `ItemsCompat`'s).

LayerNext's defaults are kept as it wrote them, mutable `{}` and `[]` included, so signatures
match; none of them is ever changed here.
"""
# ruff: noqa: B006

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdk._layernext_items import ItemsCompat, with_tags
from sdk._layernext_meta import MetaCompat, tag_metadata
from sdk._layernext_spellings import (
    UPLOAD_JOB_PREFIX,
    lake_content_type,
    not_yet,
    segment,
    unique_name,
)
from sdk.errors import BadRequest

# LayerNext's camelCase field names (and its 'Tags') for the keys of a lake item.
ITEM_FIELDS = {
    "uniqueName": "uniqueName",
    "unique_name": "uniqueName",
    "name": "name",
    "objectKey": "uniqueName",
    "storagePath": "storage_uri",
    "url": "url",
    "contentType": "content_type",
    "objectType": "content_type",
    "fileSize": "size_bytes",
    "size": "size_bytes",
    "frameWidth": "width",
    "frameHeight": "height",
    "width": "width",
    "height": "height",
    "frameRate": "fps",
    "frameCount": "frame_count",
    "uploadedAt": "uploaded_at",
    "createdAt": "uploaded_at",
    "collections": "collections",
    "Tags": "Tags",
    "tags": "Tags",
    "annotations": "annotations",
    "metadata": "metadata",
    "customMeta": "metadata",
}
COLLECTION_FIELDS = {
    "id": "id",
    "_id": "id",
    "name": "name",
    "storagePath": "name",
    "contentType": "content_type",
    "objectType": "content_type",
    "createdAt": "created_at",
    "fileCount": "file_count",
    "file_count": "file_count",
}


def _fields(record: dict[str, Any], names: Mapping[str, str], fields_filter: Any) -> dict[str, Any]:
    """The record's keys that `fields_filter` (`{"storagePath": True, ...}` or a list) asks
    for, under the names asked; the whole record when it asks for none."""
    if not fields_filter:
        return record
    wanted = (
        [k for k, v in fields_filter.items() if v]
        if isinstance(fields_filter, Mapping)
        else list(fields_filter)
    )
    metadata = record.get("metadata") or {}
    unknown = [f for f in wanted if f not in names and f not in record and f not in metadata]
    if unknown:
        raise BadRequest(
            f"Unknown field(s) {unknown} in fields_filter; known: {sorted(names)} and any "
            "metadata key of the file.",
            code="invalid_fields_filter",
        )
    found: dict[str, Any] = {}
    for key in wanted:
        source = names.get(key)
        if source is None:
            found[key] = metadata.get(key, record.get(key))
        else:
            found[key] = record.get(source)
    return found


class LakeCompat(MetaCompat, ItemsCompat):
    """The lake calls; they upload metadata and annotations with `MetaCompat`'s calls."""

    # -- upload ---------------------------------------------------------------------------------
    def file_upload(
        self,
        path: str,
        collection_type: Any,
        collection_name: Any,
        meta_data_object: Any = "",
        override: bool = False,
    ) -> dict[str, Any]:
        """LayerNext's older upload: `upload_files_to_collection` (collection_type 'image',
        'video', or LayerNext's MediaType numbers)."""
        return self.upload_files_to_collection(
            path,
            lake_content_type(collection_type, "collection_type"),
            collection_name,
            meta_data_object or {},
            override,
        )

    def upload_files_to_collection(
        self,
        path: str,
        content_type: str,
        collection_name: str,
        meta_data_object: dict[str, Any] = {},
        meta_data_override: bool = False,
        metadata_file_path: str | None = None,
        storage_prefix_path: str | None = None,
        annotation_data: dict[str, Any] | None = {
            "json_data_file_path": None,
            "operation_unique_id": None,
            "is_normalized": False,
            "is_model_run": False,
        },
    ) -> dict[str, Any]:
        """Upload a folder, a file or an `s3://` prefix into a collection; `Tags` in
        `meta_data_object` become tags of every uploaded file; then the metadata file and the
        annotations, if given. Returns `{"is_success", "job_id", "collection_id"}`; the files
        are registered when it returns, so `job_id` (`upload-<collection id>`) is done."""
        kind = lake_content_type(content_type)
        if storage_prefix_path:
            raise not_yet(
                "storage_prefix_path",
                "Files stay where they are, or go to the engine's managed storage; leave "
                "storage_prefix_path out.",
            )
        if not collection_name:
            raise BadRequest("collection_name is empty: name a collection.", code="invalid_input")
        metadata, tags = tag_metadata(meta_data_object or {})
        collection_id = self.client.upload_files_to_collection(
            path, kind, collection_name, metadata
        )
        names = self._uploaded_names(path, collection_name, collection_id)
        if tags or (meta_data_override and metadata):
            for name in names:
                if meta_data_override and metadata:
                    self.client.update_file_metadata(name, metadata)
                if tags:
                    self.client.add_tags(name, tags)
        job_id = f"{UPLOAD_JOB_PREFIX}{collection_id}"
        details = {"is_success": True, "job_id": job_id, "collection_id": collection_id}
        if not str(path).startswith("s3://") and Path(path).is_file():
            details["unique_name"] = unique_name(collection_name, Path(path).name)
        if metadata_file_path is not None:
            self.upload_metadata_by_job_id(job_id, metadata_file_path)
        annotations = annotation_data or {}
        if annotations.get("json_data_file_path") is not None:
            if not annotations.get("operation_unique_id"):
                raise BadRequest(
                    "annotation_data needs operation_unique_id beside json_data_file_path.",
                    code="invalid_input",
                )
            self.upload_annotations_by_job_id(
                job_id,
                annotations["operation_unique_id"],
                annotations["json_data_file_path"],
                bool(annotations.get("is_normalized", False)),
                bool(annotations.get("is_model_run", False)),
            )
        return details

    def _uploaded_names(self, path: str, collection_name: str, collection_id: int) -> list[str]:
        """The unique names an upload of `path` gave its files (a whole S3 upload: every file
        of the collection)."""
        if str(path).startswith("s3://"):
            return [
                item["uniqueName"] for item in self.client.iter_items(collection_id=collection_id)
            ]
        root = Path(path).expanduser()
        if root.is_file():
            return [unique_name(collection_name, root.name)]
        names = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                relative = Path(os.path.relpath(os.path.join(folder, name), root)).as_posix()
                if not name.startswith("."):
                    names.append(unique_name(collection_name, relative))
        known = {item["uniqueName"] for item in self.client.iter_items(collection_id=collection_id)}
        return [n for n in names if n in known]

    def get_upload_status(self, collection_name: Any) -> dict[str, Any]:
        """Uploads finish before `upload_files_to_collection` returns: the collection's file
        count and what the engine could not register."""
        found = self._collection_named(str(collection_name))
        failures = self.client._get(f"/collections/{found['id']}/failures", params={"page_size": 1})
        return {
            "isSuccess": True,
            "status": "COMPLETED",
            "progress": 100,
            "collection_id": found["id"],
            "file_count": found["file_count"],
            "failed_count": failures["total"],
        }

    # -- collections ----------------------------------------------------------------------------
    def create_or_update_collection(
        self, collection_name: str, content_type: str, custom_meta_object: dict[str, Any] = {}
    ) -> dict[str, Any]:
        """The collection of that name, created when new. Returns `{"is_success",
        "collection_id"}`."""
        kind = lake_content_type(content_type)
        if custom_meta_object:
            raise not_yet(
                "custom_meta_object",
                "Collections carry no metadata here; put it on the files "
                "(upload_metadata_for_collection applies an object to every file).",
            )
        found = self._find_collection(collection_name) if collection_name else None
        if found is None:
            found = self.client.create_collection(collection_name, kind)
        elif found["content_type"] != kind:
            raise BadRequest(
                f"Collection {collection_name!r} holds {found['content_type']}s, not {kind}s.",
                code="content_type_mismatch",
            )
        return {"is_success": True, "collection_id": found["id"]}

    def get_collection_id_by_name(self, collection_name: str, content_type: str = "image") -> int:
        """The id (an integer here) of the collection of that name and content type."""
        return int(self._collection_named(collection_name, lake_content_type(content_type))["id"])

    def get_collection_details(
        self, collection_id: str, fields_filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """id, name, content_type, created_at, file_count; `fields_filter` in LayerNext's
        names (`{"name": True, "fileCount": True}`) keeps those."""
        return _fields(self._collection(collection_id), COLLECTION_FIELDS, fields_filter)

    def get_file_details(
        self, unique_name: str, fields_filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The file's details with `Tags` (its tag names); `fields_filter` in LayerNext's
        names (`{"storagePath": True, "Tags": True}`) keeps those, a metadata key too."""
        if not unique_name:
            raise BadRequest("unique_name is empty: name a file.", code="invalid_input")
        item = self.client._get(f"/files/{segment(unique_name)}")
        return _fields(with_tags(item), ITEM_FIELDS, fields_filter)

    def get_system_stat_count(self) -> dict[str, Any]:
        """How many images, videos and collections the lake holds."""
        counts = {kind: self._count(content_type=kind) for kind in ("image", "video")}
        collections = self.client._get("/collections", params={"page_size": 1})["total"]
        return {
            "isSuccess": True,
            "imageCount": counts["image"],
            "videoCount": counts["video"],
            "otherCount": 0,
            "collectionCount": collections,
        }
