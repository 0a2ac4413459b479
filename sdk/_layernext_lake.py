"""LayerNext's data lake calls: upload, collections, file details, item lists and counts,
downloads, trash, signed URLs.

LayerNext's defaults are kept as it wrote them, mutable `{}` and `[]` included, so signatures
match; none of them is ever changed here.
"""
# ruff: noqa: B006

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sdk._layernext_meta import MetaCompat, tag_metadata
from sdk._layernext_spellings import (
    SORT_FIELDS,
    UPLOAD_JOB_PREFIX,
    collection_number,
    lake_content_type,
    lake_filter,
    not_yet,
    segment,
    sort_fields,
    unique_name,
)
from sdk.errors import BadRequest, NotFound
from sdk.schemas import ItemPublic, ItemQuery, Page

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


def _with_tags(item: dict[str, Any]) -> dict[str, Any]:
    """An item dict with LayerNext's `Tags` (tag names) beside our tag records."""
    names = sorted({t["name"] for t in item.get("tags", [])})
    return {**item, "Tags": names}


class LakeCompat(MetaCompat):
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
        return _fields(_with_tags(item), ITEM_FIELDS, fields_filter)

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

    # -- items ----------------------------------------------------------------------------------
    def get_valid_sort_fields(self) -> list[str]:
        """The `sort_by_field` values `sort_order` takes (LayerNext's `video_index` is not one:
        videos are whole files here)."""
        return list(SORT_FIELDS)

    def _page(self, **fields: Any) -> Page[ItemPublic]:
        search = ItemQuery.model_validate(fields)
        body = self.client._post("/items/search", json=search.model_dump(mode="json"))
        return Page[ItemPublic].model_validate(body)

    def _count(self, **fields: Any) -> int:
        return self._page(page_size=1, **fields).total

    def _items(self, **fields: Any) -> list[dict[str, Any]]:
        page = self._page(**fields)
        return [_with_tags(i.model_dump(by_alias=True, mode="json")) for i in page.items]

    def get_item_list_from_datalake(
        self,
        item_type: str,
        query: str = "",
        filter: dict[str, Any] = {},
        page_index: int = 0,
        page_size: int = 20,
        sort_order: dict[str, Any] = {},
    ) -> list[dict[str, Any]]:
        """A page of the lake's files of `item_type` matching `query` and `filter`, ordered
        by `sort_order` (`{"sort_by_field": "name", "sort_order": "DESC"}`)."""
        return self._items(
            content_type=lake_content_type(item_type, "item_type"),
            query=query or None,
            filter=lake_filter(filter),
            page_index=page_index,
            page_size=page_size,
            **sort_fields(sort_order),
        )

    def get_item_list_from_collection(
        self,
        collection_id: Any,
        query: str = "",
        filter: dict[str, Any] = {},
        page_index: int = 0,
        page_size: int = 20,
        sort_order: dict[str, Any] = {},
    ) -> list[dict[str, Any]]:
        """A page of a collection's files (see `get_item_list_from_datalake`)."""
        return self._items(
            collection_id=collection_number(collection_id),
            query=query or None,
            filter=lake_filter(filter),
            page_index=page_index,
            page_size=page_size,
            **sort_fields(sort_order),
        )

    def get_item_count_from_metalake(
        self, item_type: Any, query: str = "", filter: dict[str, Any] = {}
    ) -> dict[str, Any]:
        """`{"isSuccess": True, "itemCount": n}`: the lake's files of `item_type` matching."""
        count = self._count(
            content_type=lake_content_type(item_type, "item_type"),
            query=query or None,
            filter=lake_filter(filter),
        )
        return {"isSuccess": True, "itemCount": count}

    def get_item_count_from_collection(
        self, collection_id: Any, query: str = "", filter: dict[str, Any] = {}
    ) -> dict[str, Any]:
        """`{"isSuccess": True, "itemCount": n}`: the collection's files matching."""
        count = self._count(
            collection_id=collection_number(collection_id),
            query=query or None,
            filter=lake_filter(filter),
        )
        return {"isSuccess": True, "itemCount": count}

    # -- downloads ------------------------------------------------------------------------------
    def _download_page(
        self, fields: dict[str, Any], custom_download_path: str, where: str
    ) -> dict[str, Any]:
        folder = Path(custom_download_path or where).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        items = self._page(**fields).items
        for item in items:
            target = folder / item.unique_name
            self.client._download(f"/files/{item.id}/content", target)
        return {
            "is_success": True,
            "message": f"{len(items)} file(s) downloaded to {folder}",
            "download_path": str(folder),
            "file_count": len(items),
        }

    def download_files_from_collection(
        self,
        collection_id: str,
        custom_download_path: str = "",
        page_index: int = 0,
        page_size: int = 20,
        query: str = "",
        metalake_filter: dict[str, Any] = {},
        sort_order: dict[str, Any] = {},
    ) -> dict[str, Any]:
        """Download one page of a collection's files, named by unique name."""
        number = collection_number(collection_id)
        fields = {
            "collection_id": number,
            "query": query or None,
            "filter": lake_filter(metalake_filter),
            "page_index": page_index,
            "page_size": page_size,
            **sort_fields(sort_order),
        }
        return self._download_page(fields, custom_download_path, f"collection_{number}")

    def download_files_from_metalake(
        self,
        item_type: str,
        custom_download_path: str = "",
        page_index: int = 0,
        page_size: int = 20,
        query: str = "",
        metalake_filter: dict[str, Any] = {},
        sort_order: dict[str, Any] = {},
    ) -> dict[str, Any]:
        """Download one page of the lake's files of `item_type`, named by unique name."""
        kind = lake_content_type(item_type, "item_type")
        fields = {
            "content_type": kind,
            "query": query or None,
            "filter": lake_filter(metalake_filter),
            "page_index": page_index,
            "page_size": page_size,
            **sort_fields(sort_order),
        }
        return self._download_page(fields, custom_download_path, f"metalake_{kind}")

    def get_downloadable_url(self, file_key: str) -> str:
        """A signed URL of the file with unique name `file_key`, fetchable without a key for
        the engine's default lifetime (an hour)."""
        return self.client.get_downloadable_url(file_key)

    # -- trash ----------------------------------------------------------------------------------
    def _trash(self, **selection: Any) -> dict[str, Any]:
        report = self.client.trash_items(**selection)
        return {"isSuccess": True, "message": f"{report['trashed']} file(s) trashed", **report}

    def trash_objects_from_datalake(
        self, datalake_query: str, datalake_filter: dict[str, Any] = {}, content_type: str = "image"
    ) -> dict[str, Any]:
        """Take the lake's files of `content_type` that the query and filter select out of the
        lake, with their annotations, tags and vectors. One of the two is needed."""
        selection = lake_filter(datalake_filter)
        if not datalake_query and not selection:
            raise BadRequest(
                "Give a datalake_query or a datalake_filter: an empty selection would trash "
                "the whole lake.",
                code="invalid_input",
            )
        return self._trash(
            query=datalake_query or None,
            filter=selection,
            content_type=lake_content_type(content_type),
        )

    def trash_objects_from_collection(
        self, collection_id: str, query: str = "", filter: dict[str, Any] = {}
    ) -> dict[str, Any]:
        """Take the collection's files that the query and filter select (all of them, without
        either) out of the lake, with their annotations, tags and vectors."""
        return self._trash(
            collection_id=collection_number(collection_id),
            query=query or None,
            filter=lake_filter(filter),
        )

    # -- annotation downloads -------------------------------------------------------------------
    def download_collection(
        self,
        collection_id: str,
        annotation_type: str = "all",
        operation_id_list: Sequence[str] = [],
        custom_download_path: str | None = None,
        is_media_include: bool = True,
    ) -> dict[str, Any]:
        """Write the collection's annotations (`annotations.json`, pixel coordinates) and,
        with `is_media_include`, its files under `images/`; `annotation_type` 'human',
        'machine' or 'all' and `operation_id_list` keep those annotations."""
        if annotation_type not in ("all", "human", "machine"):
            raise BadRequest(
                f"annotation_type must be 'all', 'human' or 'machine', not {annotation_type!r}.",
                code="invalid_input",
            )
        out = self.client.download_annotations(
            collection_number(collection_id),
            output_dir=custom_download_path,
            include_files=is_media_include,
        )
        kept = _keep_annotations(out / "annotations.json", annotation_type, operation_id_list)
        return {"is_success": True, "download_path": str(out), "annotations": kept}

    def download_annotations(
        self,
        collection_id: str,
        operation_id: Any,
        custom_download_path: str | None = None,
        is_media_include: bool = True,
    ) -> dict[str, Any]:
        """`download_collection` of one operation's annotations (`operation_id`), or of the
        human ones when `operation_id` is None."""
        if operation_id is None:
            return self.download_collection(
                collection_id, "human", [], custom_download_path, is_media_include
            )
        return self.download_collection(
            collection_id, "all", [str(operation_id)], custom_download_path, is_media_include
        )

    def remove_annotations(self, collection_id: str, model_run_id: str) -> dict[str, Any]:
        """Delete the annotations of operation `model_run_id` from the collection's files."""
        found = self._collection(collection_id)
        report = self.client._post(
            f"/collections/by-name/{segment(found['name'])}/annotations/upload",
            json={
                "operation_unique_id": str(model_run_id),
                "annotation_shape_type": "mixed",
                "data": {"images": []},
            },
        )
        if not report["replaced"]:
            raise NotFound(
                f"Collection {found['name']!r} has no annotations of operation "
                f"{model_run_id!r}; nothing was removed.",
                code="operation_not_found",
            )
        return {"is_success": True, "removed": report["replaced"]}


def _keep_annotations(document: Path, annotation_type: str, operations: Sequence[str]) -> int:
    """Rewrite a downloaded annotations.json keeping only the annotations asked for; returns
    how many stayed."""
    import json

    data = json.loads(document.read_text(encoding="utf-8"))
    wanted = {str(o) for o in operations}
    kept = 0
    for image in data["images"]:
        image["annotations"] = [
            a
            for a in image.get("annotations", [])
            if (annotation_type == "all" or a.get("source") == annotation_type)
            and (not wanted or str(a.get("operation_id")) in wanted)
        ]
        kept += len(image["annotations"])
    data["annotation_type"] = annotation_type
    data["operation_id_list"] = sorted(wanted)
    partial = document.with_name(document.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    partial.replace(document)
    return kept
