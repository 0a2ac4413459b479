"""LayerNext's item calls: lists and counts with its filter and sort spellings, file
downloads, annotation downloads and the trash.

LayerNext's defaults are kept as it wrote them, mutable `{}` and `[]` included, so signatures
match; none of them is ever changed here.
"""
# ruff: noqa: B006

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdk._layernext_base import LayerNextBase
from sdk._layernext_spellings import (
    SORT_FIELDS,
    collection_number,
    lake_content_type,
    lake_filter,
    segment,
    sort_fields,
)
from sdk.errors import BadRequest, NotFound
from sdk.schemas import ItemPublic, ItemQuery, Page


def with_tags(item: dict[str, Any]) -> dict[str, Any]:
    """An item dict with LayerNext's `Tags` (tag names) beside our tag records."""
    names = sorted({t["name"] for t in item.get("tags", [])})
    return {**item, "Tags": names}


class ItemsCompat(LayerNextBase):
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
        return [with_tags(i.model_dump(by_alias=True, mode="json")) for i in page.items]

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
