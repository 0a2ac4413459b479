"""LayerNext's metadata and annotation uploads, onto the engine's file metadata, tags and
annotation sets.

A metadata file is `{"files": [{"file": ..., "metadata": {"Field": ..., "Tags": [...]}}]}`;
`Tags` become tags of the file (human), the other keys its metadata. An annotation file is
LayerNext's `{"images": [{"image": ..., "annotations": [{"type": "rectangle", "bbox": ...}]}]}`,
translated to the engine's annotation JSON (docs/annotations.md) before it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdk._layernext_base import LayerNextBase
from sdk._layernext_spellings import (
    lake_content_type,
    not_yet,
    segment,
    unique_name,
)
from sdk.errors import BadRequest, NotFound

SHAPE_KEYS = {"rectangle": "bbox", "polygon": "polygon", "points": "points", "line": "line"}


def tag_metadata(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A LayerNext metadata object split into the metadata proper and its `Tags`."""
    fields = dict(metadata)
    tags = fields.pop("Tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise BadRequest(
            f'"Tags" must be a list of non-empty strings, not {tags!r}.', code="invalid_metadata"
        )
    return fields, tags


def _read(path: str, what: str) -> Any:
    source = Path(path).expanduser()
    if not source.is_file():
        raise BadRequest(f"{what} {path!r} is not a file.", code="invalid_path")
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(
            f"{what} {path!r} is not valid JSON: {exc}; nothing was sent.", code="invalid_input"
        ) from exc


def _metadata_entries(path: str) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(file, metadata, tags) of each entry of a LayerNext metadata file, all checked first."""
    data = _read(path, "The metadata file")
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise BadRequest(
            f'{path!r} needs a "files" list: {{"files": [{{"file": "a.jpg", "metadata": '
            '{"Field": "value", "Tags": ["t"]}}]}.',
            code="invalid_metadata",
        )
    entries = []
    for index, entry in enumerate(files):
        name = entry.get("file", entry.get("uniqueName")) if isinstance(entry, dict) else None
        metadata = entry.get("metadata", {}) if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or not isinstance(metadata, dict):
            raise BadRequest(
                f'files[{index}] needs "file" (a name) and "metadata" (an object); '
                "nothing was written.",
                code="invalid_metadata",
            )
        fields, tags = tag_metadata(metadata)
        entries.append((name, fields, tags))
    return entries


def _annotation(entry: Any, shape_type: str | None, where: str) -> dict[str, Any]:
    """One LayerNext annotation as the engine's: the shape from its `type` (else
    `shape_type`), `attributes` kept in metadata."""
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} is not an object.", code="invalid_annotations")
    shape = entry.get("type", shape_type)
    if shape == "line" or ("line" in entry and shape is None):
        raise not_yet(
            f"{where}: a line annotation",
            "The lake stores boxes, polygons and keypoints: send the line as a polygon or "
            "leave it out.",
        )
    if shape is not None and shape not in SHAPE_KEYS:
        raise BadRequest(
            f"{where}.type must be one of {sorted(SHAPE_KEYS)}, not {shape!r}.",
            code="invalid_annotations",
        )
    result: dict[str, Any] = {
        k: entry[k] for k in ("label", "confidence", "frame_index") if k in entry
    }
    metadata = dict(entry.get("metadata") or {})
    if entry.get("attributes"):
        metadata["attributes"] = entry["attributes"]
    if metadata:
        result["metadata"] = metadata
    if shape == "rectangle" or (shape is None and "bbox" in entry):
        result["bbox"] = entry.get("bbox")
    elif shape == "polygon" or (shape is None and "polygon" in entry):
        result["polygon"] = entry.get("polygon")
    elif shape == "points" or (shape is None and "points" in entry):
        points = entry.get("points") or []
        result["keypoints"] = [[*p[:2], 2] if len(p) == 2 else p for p in points]
    return result


def translate_annotations(data: Any, shape_type: str | None = None) -> dict[str, Any]:
    """A LayerNext annotation document as the engine's annotation JSON ('mixed' shapes)."""
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise BadRequest(
            'The annotation file needs an "images" list: {"images": [{"image": "a.jpg", '
            '"annotations": [{"type": "rectangle", "bbox": [x, y, w, h], "label": "Bird"}]}]}.',
            code="invalid_annotations",
        )
    out = []
    for i, image in enumerate(images):
        if not isinstance(image, dict) or not isinstance(image.get("image"), str):
            raise BadRequest(f'images[{i}] needs "image" (a name).', code="invalid_annotations")
        out.append(
            {
                "image": image["image"],
                "annotations": [
                    _annotation(a, shape_type, f"images[{i}].annotations[{j}]")
                    for j, a in enumerate(image.get("annotations") or [])
                ],
            }
        )
    return {"images": out}


def storage_uri(path: str, bucket_name: str | None) -> str:
    """A LayerNext storage path as the engine's storage URI: a URI as it is, a key in
    `bucket_name` as `s3://bucket/key`, an absolute path as `file://`."""
    if "://" in path:
        return path
    if bucket_name:
        return f"s3://{bucket_name}/{path.lstrip('/')}"
    if path.startswith("/"):
        return Path(path).as_uri()
    raise BadRequest(
        f"Storage path {path!r} names no place: give bucket_name (for s3://bucket/{path}), "
        "an absolute path, or a full file:// or s3:// URI.",
        code="invalid_input",
    )


class MetaCompat(LayerNextBase):
    def _names_at(self, paths: list[str], bucket_name: str | None) -> dict[str, list[str]]:
        """The unique names of the files stored at each storage path."""
        uris = {p: storage_uri(p, bucket_name) for p in paths}
        found: dict[str, list[str]] = {}
        wanted = sorted(set(uris.values()))
        for start in range(0, len(wanted), 1000):
            answer = self.client._post(
                "/files/by-storage", json={"storage_uris": wanted[start : start + 1000]}
            )
            found.update({m["storage_uri"]: m["unique_names"] for m in answer["matches"]})
        return {p: found.get(u, []) for p, u in uris.items()}

    # -- metadata -------------------------------------------------------------------------------
    def _write_metadata(
        self, entries: list[tuple[str, dict[str, Any], list[str]]]
    ) -> dict[str, Any]:
        for name, _, _ in entries:  # every file exists before anything is written
            self.client._get(f"/files/{segment(name)}")
        tags = 0
        for name, fields, names in entries:
            if fields:
                self.client.update_file_metadata(name, fields)
            if names:
                self.client.add_tags(name, names)
                tags += len(names)
        return {"is_success": True, "files": len(entries), "tags": tags}

    def _collection_entries(
        self, collection_name: str, path: str
    ) -> list[tuple[str, dict[str, Any], list[str]]]:
        return [
            (unique_name(collection_name, name), fields, tags)
            for name, fields, tags in _metadata_entries(path)
        ]

    def upload_metadata_for_files(
        self, collection_name: str, content_type: str, json_data_file_path: str
    ) -> dict[str, Any]:
        """Metadata (and `Tags`) for files of a collection, each named by its path in the
        uploaded folder."""
        found = self._collection_named(collection_name, lake_content_type(content_type))
        return self._write_metadata(self._collection_entries(found["name"], json_data_file_path))

    def upload_metadata_by_unique_name(self, json_data_file_path: str) -> dict[str, Any]:
        """Metadata (and `Tags`) for files named by unique name."""
        return self._write_metadata(_metadata_entries(json_data_file_path))

    def upload_metadata_by_storage_path(
        self, json_data_file_path: str, bucket_name: str | None = None
    ) -> dict[str, Any]:
        """Metadata (and `Tags`) for files named by where they are stored: a key of
        `bucket_name`, an absolute path, or a full URI (every file registered there)."""
        entries = _metadata_entries(json_data_file_path)
        names = self._names_at([name for name, _, _ in entries], bucket_name)
        missing = [path for path, found in names.items() if not found]
        if missing:
            raise NotFound(
                f"No file of the lake is stored at {missing[:5]} (storage URIs "
                f"{[storage_uri(p, bucket_name) for p in missing[:5]]}); nothing was written.",
                code="file_not_found",
            )
        return self._write_metadata(
            [(unique, fields, tags) for path, fields, tags in entries for unique in names[path]]
        )

    def upload_metadata_by_job_id(self, job_id: str, json_data_file_path: str) -> dict[str, Any]:
        """Metadata (and `Tags`) for the files of an upload (the `job_id` that
        upload_files_to_collection returned), each named by its path in the uploaded folder."""
        found = self._upload_collection(job_id)
        return self._write_metadata(self._collection_entries(found["name"], json_data_file_path))

    def upload_metadata_for_collection(
        self,
        collection_name: str,
        content_type: str,
        metadata_obj: dict[str, Any],
        is_apply_to_all_files: bool = True,
    ) -> dict[str, Any]:
        """`metadata_obj` (and its `Tags`) on every file of the collection."""
        found = self._collection_named(collection_name, lake_content_type(content_type))
        if not is_apply_to_all_files:
            raise not_yet(
                "is_apply_to_all_files=False",
                "Collections carry no metadata of their own here: apply it to the files.",
            )
        fields, tags = tag_metadata(metadata_obj)
        names = [i["uniqueName"] for i in self.client.iter_items(collection_id=found["id"])]
        return self._write_metadata([(name, fields, tags) for name in names])

    # -- annotations ----------------------------------------------------------------------------
    def _upload(
        self,
        collection_name: str,
        operation_unique_id: str,
        document: dict[str, Any],
        is_normalized: bool,
        is_model_run: bool,
    ) -> dict[str, Any]:
        report: dict[str, Any] = self.client._post(
            f"/collections/by-name/{segment(collection_name)}/annotations/upload",
            json={
                "operation_unique_id": operation_unique_id,
                "annotation_shape_type": "mixed",
                "is_normalized": bool(is_normalized),
                "is_model_run": bool(is_model_run),
                "data": document,
            },
        )
        return report

    def upload_annotations_for_collection(
        self,
        collection_name: str,
        operation_unique_id: str,
        json_data_file_path: str,
        is_normalized: bool,
        is_model_run: bool,
    ) -> dict[str, Any]:
        """Annotations for a collection's files, each image named by its path in the
        uploaded folder. Returns what was written and `unknown_images`."""
        document = translate_annotations(_read(json_data_file_path, "The annotation file"))
        found = self._collection_named(collection_name)
        return self._upload(
            found["name"], operation_unique_id, document, is_normalized, is_model_run
        )

    def upload_annotations_by_job_id(
        self,
        job_id: str,
        operation_unique_id: str,
        json_data_file_path: str,
        is_normalized: bool,
        is_model_run: bool,
    ) -> dict[str, Any]:
        """Annotations for the files of an upload (the `job_id` upload_files_to_collection
        returned)."""
        document = translate_annotations(_read(json_data_file_path, "The annotation file"))
        found = self._upload_collection(job_id)
        return self._upload(
            found["name"], operation_unique_id, document, is_normalized, is_model_run
        )

    def upload_annotations_by_unique_name(
        self,
        operation_unique_id: str,
        json_data_file_path: str,
        is_normalized: bool,
        is_model_run: bool,
    ) -> dict[str, Any]:
        """Annotations for files named by unique name, wherever they are: sent per collection
        (a file's first collection)."""
        document = translate_annotations(_read(json_data_file_path, "The annotation file"))
        return self._by_unique_name(operation_unique_id, document, is_normalized, is_model_run)

    def _by_unique_name(
        self,
        operation_unique_id: str,
        document: dict[str, Any],
        is_normalized: bool,
        is_model_run: bool,
    ) -> dict[str, Any]:
        groups: dict[str, list[dict[str, Any]]] = {}
        unknown = []
        for image in document["images"]:
            try:
                item = self.client._get(f"/files/{segment(image['image'])}")
            except NotFound:
                unknown.append(image["image"])
                continue
            groups.setdefault(item["collections"][0], []).append(image)
        if not groups:
            raise NotFound(
                f"None of the {len(unknown)} image(s) is a unique name of the lake (e.g. "
                f"{unknown[:3]}); unique names look like '<collection>_<path with _ for />'.",
                code="no_images_matched",
            )
        total = {"operation_id": operation_unique_id, "written": 0, "replaced": 0}
        matched = 0
        for collection, images in groups.items():
            report = self._upload(
                collection, operation_unique_id, {"images": images}, is_normalized, is_model_run
            )
            total["written"] += report["written"]
            total["replaced"] += report["replaced"]
            matched += report["matched_images"]
            unknown += report["unknown_images"]
        return {**total, "matched_images": matched, "unknown_images": unknown}

    def upload_annotations_by_storage_path(
        self,
        operation_unique_id: str,
        json_data_file_path: str,
        is_normalized: bool,
        is_model_run: bool,
        bucket_name: str | None = None,
    ) -> dict[str, Any]:
        """Annotations for files named by where they are stored: a key of `bucket_name`
        (else of an image's `storageName`), an absolute path, or a full URI; every file
        registered there gets them."""
        data = _read(json_data_file_path, "The annotation file")
        document = translate_annotations(data)
        buckets = [
            i.get("storageName", bucket_name) if isinstance(i, dict) else bucket_name
            for i in data["images"]
        ]
        images: list[dict[str, Any]] = []
        unknown: list[str] = []
        for image, bucket in zip(document["images"], buckets, strict=True):
            names = self._names_at([image["image"]], bucket)[image["image"]]
            if not names:
                unknown.append(image["image"])
            images.extend({**image, "image": name} for name in names)
        if not images:
            raise NotFound(
                f"No file of the lake is stored at any of the {len(unknown)} image path(s) "
                f"(e.g. {unknown[:3]}); nothing was written.",
                code="no_images_matched",
            )
        report = self._by_unique_name(
            operation_unique_id, {"images": images}, is_normalized, is_model_run
        )
        return {**report, "unknown_images": unknown + report["unknown_images"]}

    def upload_annoations_for_folder(
        self,
        collection_base_path: str,
        operation_unique_id: str,
        json_data_file_path: str,
        shape_type: str,
        is_normalized: bool,
        is_model_run: bool,
        destination_project_id: str | None = None,
    ) -> dict[str, Any]:
        """LayerNext's older upload (its spelling): annotations for the collection named
        `collection_base_path` (images by path, or unique name), or, without one, for files
        named by unique name; `shape_type` applies where an annotation has no `type`."""
        if destination_project_id:
            raise not_yet(
                "destination_project_id",
                "Machine annotations become predictions of a Label Studio project made "
                "after them: create_annotation_project_from_collection.",
            )
        if shape_type is not None and shape_type not in SHAPE_KEYS:
            raise BadRequest(
                f"shape_type must be one of {sorted(SHAPE_KEYS)}, not {shape_type!r}.",
                code="invalid_input",
            )
        document = translate_annotations(
            _read(json_data_file_path, "The annotation file"), shape_type
        )
        if not collection_base_path:
            return self._by_unique_name(operation_unique_id, document, is_normalized, is_model_run)
        found = self._collection_named(collection_base_path)
        return self._upload(
            found["name"], operation_unique_id, document, is_normalized, is_model_run
        )

    def upload_data(
        self,
        collection_name: str,
        file_path: str,
        meta_data_object: dict[str, Any],
        operation_unique_id: str,
        json_data_file_path: str,
        is_normalized: bool,
        is_model_run: bool,
    ) -> dict[str, Any]:
        """LayerNext's older call: upload images, then their annotations."""
        details: dict[str, Any] = self.upload_files_to_collection(  # type: ignore[attr-defined]
            file_path, "image", collection_name, meta_data_object or {}
        )
        if json_data_file_path:
            self.upload_annotations_by_job_id(
                details["job_id"],
                operation_unique_id,
                json_data_file_path,
                is_normalized,
                is_model_run,
            )
        return details
