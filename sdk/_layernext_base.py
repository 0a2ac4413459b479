"""What the `LayerNextClient` call groups share: the wrapped `sdk.Client` and the lookups of
collections by id, by name and by an upload's job id."""

from __future__ import annotations

from typing import Any

from sdk._layernext_spellings import UPLOAD_JOB_PREFIX, collection_number
from sdk.client import Client
from sdk.errors import BadRequest, NotFound


class LayerNextBase:
    """Holds the `sdk.Client` every call goes through, and the lookups the calls share."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _collection(self, collection_id: object) -> dict[str, Any]:
        found: dict[str, Any] = self.client._get(f"/collections/{collection_number(collection_id)}")
        return found

    def _find_collection(self, collection_name: str) -> dict[str, Any] | None:
        """The collection of that name, or None."""
        page_index = 0
        while True:
            page = self.client._get(
                "/collections", params={"page_index": page_index, "page_size": 100}
            )
            for found in page["items"]:
                if found["name"] == collection_name:
                    return dict(found)
            page_index += 1
            if not page["items"] or page_index * 100 >= page["total"]:
                return None

    def _collection_named(self, collection_name: str, kind: str | None = None) -> dict[str, Any]:
        if not collection_name:
            raise BadRequest("collection_name is empty: name a collection.", code="invalid_input")
        found = self._find_collection(collection_name)
        if found is None or (kind is not None and found["content_type"] != kind):
            what = f"{kind} collection" if kind else "collection"
            raise NotFound(
                f"No {what} is named {collection_name!r}; list them with "
                "`metalake collections list`, or upload into that name first.",
                code="collection_not_found",
            )
        return found

    def _upload_collection(self, job_id: object) -> dict[str, Any]:
        """The collection an upload's `job_id` (`upload-<collection id>`) names."""
        text = str(job_id)
        if not text.startswith(UPLOAD_JOB_PREFIX):
            raise BadRequest(
                f"job_id {job_id!r} is not an upload's: pass the job_id that "
                "upload_files_to_collection returned (it looks like 'upload-3').",
                code="invalid_job_id",
            )
        return self._collection(text[len(UPLOAD_JOB_PREFIX) :])
