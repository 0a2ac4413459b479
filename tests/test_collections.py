"""Collections over the real API: create, details, listing, conflicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sdk import Client, Conflict, NotFound
from tests.fixtures import imagegen


def test_create_and_details(client: Client) -> None:
    created = client.create_collection("birds", "image")
    assert created["name"] == "birds"
    assert created["file_count"] == 0
    details = client.get_collection_details(created["id"])
    assert details == created
    assert client.get_collection_details(created["id"], ["name", "content_type"]) == {
        "name": "birds",
        "content_type": "image",
    }


def test_duplicate_names_conflict_with_a_clear_message(client: Client) -> None:
    created = client.create_collection("birds", "image")
    with pytest.raises(Conflict, match=rf"already exists \(id {created['id']}\)") as same:
        client.create_collection("birds", "image")
    assert same.value.code == "collection_exists"
    with pytest.raises(Conflict, match="already holds images") as other:
        client.create_collection("birds", "video")
    assert other.value.code == "collection_content_type_mismatch"
    assert other.value.details["collection_id"] == created["id"]


def test_uploading_into_an_existing_collection_adds_to_it(client: Client, tmp_path: Path) -> None:
    created = client.create_collection("birds", "image")
    imagegen.image(tmp_path / "a" / "1.jpg")
    imagegen.image(tmp_path / "b" / "2.jpg")
    assert client.upload_files_to_collection(tmp_path / "a", "image", "birds") == created["id"]
    assert client.upload_files_to_collection(tmp_path / "b", "image", "birds") == created["id"]
    assert client.get_collection_details(created["id"])["file_count"] == 2


def test_unknown_collection_is_404(client: Client) -> None:
    with pytest.raises(NotFound, match="No collection has id 999"):
        client.get_collection_details(999)
    with pytest.raises(NotFound):
        client.get_item_list_from_collection(999)


def test_list_is_paginated(client: Client, api_url: str, make_key: Any) -> None:
    for i in range(5):
        client.create_collection(f"c{i}", "image" if i % 2 else "video")
    headers = {"Authorization": f"Bearer {make_key('read')}"}
    page = httpx.get(
        f"{api_url}/api/v1/collections", params={"page_index": 1, "page_size": 2}, headers=headers
    ).json()
    assert page["total"] == 5
    assert [c["name"] for c in page["items"]] == ["c2", "c3"]
    too_big = httpx.get(
        f"{api_url}/api/v1/collections", params={"page_size": 1001}, headers=headers
    )
    assert too_big.status_code == 422
    write = httpx.post(
        f"{api_url}/api/v1/collections",
        headers=headers,
        json={"name": "x", "content_type": "image"},
    )
    assert write.status_code == 403


def test_collection_name_with_a_path_separator_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from sdk import BadRequest

    with pytest.raises(BadRequest, match="contains"):
        client.create_collection("birds/2024", "image")
