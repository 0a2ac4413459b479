"""LayerNext's spellings as the engine's: content types, filters, sorts, collection ids and
unique names, and the error of a call not supported yet. `sdk.Client` reads LayerNext's
`sort_order` with these too."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sdk.errors import BadRequest, NotSupportedYet

UPLOAD_JOB_PREFIX = "upload-"
"""`upload_files_to_collection` registers files before it returns, so it has no job to wait
for; its `job_id` is this prefix and the collection id, which `wait_for_job_complete` answers
at once and the `*_by_job_id` calls resolve to the collection."""

CONTENT_TYPES = {"image": "image", "video": "video", 5: "image", 4: "video", 2: "image", 1: "video"}
SORT_FIELDS = ("date_modified", "date_created", "name", "size")
FILTER_KEYS = ("annotation_types", "from_date", "to_date")
HEX_ID = re.compile(r"^[0-9a-fA-F]{24}$")


def not_yet(call: str, instead: str) -> NotSupportedYet:
    """The error of a LayerNext call this engine has no feature for yet."""
    return NotSupportedYet(
        f"{call} is not supported by this engine yet. {instead}",
        code="not_supported_yet",
        status=None,
        details={"call": call},
    )


def lake_content_type(value: object, what: str = "content_type") -> str:
    """'image' or 'video' from LayerNext's spellings (the names, or its MediaType numbers)."""
    found = CONTENT_TYPES.get(value.lower() if isinstance(value, str) else value)  # type: ignore[call-overload]
    if found is None:
        if value == "other" or value in (6, 7):
            raise not_yet(
                f"{what}='other'", "The lake holds images and videos: use 'image' or 'video'."
            )
        raise BadRequest(f"{what} must be 'image' or 'video', not {value!r}.", code="invalid_input")
    return found


def lake_filter(filter: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """LayerNext's filter object (`annotation_types`, `from_date`, `to_date`); empty is none."""
    if filter is None or filter == "" or filter == {}:
        return None
    if not isinstance(filter, Mapping):
        raise BadRequest(
            'filter must be an object such as {"annotation_types": ["human"], '
            f'"from_date": "2024-01-01"}}, not {filter!r}.',
            code="invalid_filter",
        )
    return dict(filter)


def sort_fields(sort_order: Mapping[str, Any] | None) -> dict[str, Any]:
    """`{"sort_by_field": ..., "sort_order": "ASC" | "DESC"}` as the engine's `sort_by` and
    `sort_order` search fields."""
    if not sort_order:
        return {}
    unknown = sorted(set(sort_order) - {"sort_by_field", "sort_order"})
    if unknown:
        raise BadRequest(
            f"sort_order has unknown key(s) {unknown}: use sort_by_field and sort_order.",
            code="invalid_sort",
        )
    fields: dict[str, Any] = {}
    order = sort_order.get("sort_order")
    if order is not None:
        if order not in ("ASC", "DESC"):
            raise BadRequest(
                f"sort_order must be 'ASC' or 'DESC', not {order!r}.", code="invalid_sort"
            )
        fields["sort_order"] = order
    field = sort_order.get("sort_by_field")
    if field is not None:
        if field == "video_index":
            raise not_yet(
                "sort_by_field='video_index'",
                f"Sort by one of {list(SORT_FIELDS)}; videos are whole files here, not frames.",
            )
        if field not in SORT_FIELDS:
            raise BadRequest(
                f"sort_by_field must be one of {list(SORT_FIELDS)}, not {field!r}.",
                code="invalid_sort",
            )
        fields["sort_by"] = field
    return fields


def collection_number(collection_id: object) -> int:
    """A collection id as the engine's integer, saying what ids look like here."""
    text = str(collection_id).strip()
    if text.isdigit():
        return int(text)
    if HEX_ID.match(text):
        detail = "a LayerNext id (24 hex digits) from another installation"
    else:
        detail = "not an id"
    raise BadRequest(
        f"collection_id {collection_id!r} is {detail}: collection ids here are integers "
        "(1, 2, ...). Find one with get_collection_id_by_name(name).",
        code="invalid_collection_id",
    )


def unique_name(collection_name: str, relative_path: str) -> str:
    """The lake's unique name of a file uploaded into `collection_name` at `relative_path`."""
    return f"{collection_name}_{relative_path.replace(os.sep, '/').replace('/', '_')}"


def segment(value: str) -> str:
    return quote(value, safe="")
