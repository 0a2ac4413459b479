"""Items over the real API: pages, search, details, metadata, content, tags and annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from engine.db.models import Annotation, File, Tag
from engine.db.session import session_scope
from engine.lake.items import list_items
from sdk import BadRequest, Client, Forbidden, NotFound, ValidationFailed
from sdk.schemas import ItemQuery
from tests.fixtures import imagegen


@pytest.fixture
def lake(client: Client, tmp_path: Path) -> int:
    imagegen.images(tmp_path / "imgs", [f"img{i:02d}.jpg" for i in range(25)])
    return client.upload_files_to_collection(tmp_path / "imgs", "image", "lake")


def _annotate(factory: sessionmaker[Session], unique_name: str) -> None:
    with session_scope(factory) as s:
        file_id = s.scalars(select(File.id).where(File.unique_name == unique_name)).one()
        s.add_all(
            [
                Tag(file_id=file_id, name="bird", source="human"),
                Tag(file_id=file_id, name="sky", source="machine", confidence=0.7),
                Annotation(
                    file_id=file_id,
                    label="Bird",
                    shape="box",
                    source="human",
                    geometry={"x1": 1, "y1": 2, "x2": 10, "y2": 20},
                ),
                Annotation(
                    file_id=file_id,
                    label="Cat",
                    shape="box",
                    source="machine",
                    status="proposed",
                    confidence=0.4,
                    geometry={"x1": 0, "y1": 0, "x2": 5, "y2": 5},
                ),
            ]
        )


def test_pages_are_stable_and_complete(client: Client, lake: int, api_url: str) -> None:
    pages = [
        client.get_item_list_from_collection(lake, page_index=i, page_size=10) for i in range(3)
    ]
    assert [len(p) for p in pages] == [10, 10, 5]
    ids = [item["id"] for page in pages for item in page]
    assert ids == sorted(ids)
    assert len(set(ids)) == 25
    first = pages[0][0]
    assert set(first) >= {"id", "name", "uniqueName", "url", "tags", "annotations", "metadata"}
    assert first["url"] == f"{api_url}/api/v1/files/{first['id']}/content"
    assert [i["id"] for i in client.iter_items(page_size=7)] == ids
    assert len(client.get_item_list_from_datalake("image", page_size=1000)) == 25
    assert client.get_item_list_from_datalake("video") == []

    raw = httpx.get(
        f"{api_url}/api/v1/items",
        params={"collection_id": lake, "page_size": 4, "page_index": 6},
        headers={"Authorization": f"Bearer {client.api_key}"},
    ).json()
    assert (raw["total"], raw["page_index"], len(raw["items"])) == (25, 6, 1)


def test_page_size_is_capped(client: Client, lake: int, api_url: str) -> None:
    with pytest.raises(ValidationFailed, match="page_size"):
        client.get_item_list_from_datalake(page_size=1001)
    too_big = httpx.get(
        f"{api_url}/api/v1/items",
        params={"page_size": 1001},
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert too_big.status_code == 422
    assert too_big.json()["error"]["code"] == "validation_error"


def test_tags_and_annotations_come_with_items(
    client: Client, lake: int, session_factory: sessionmaker[Session]
) -> None:
    _annotate(session_factory, "lake_img03.jpg")
    item = client.get_file_details("lake_img03.jpg")
    assert [(t["name"], t["source"]) for t in item["tags"]] == [
        ("bird", "human"),
        ("sky", "machine"),
    ]
    assert [(a["label"], a["status"]) for a in item["annotations"]] == [
        ("Bird", "applied"),
        ("Cat", "proposed"),
    ]
    assert item["annotations"][0]["geometry"] == {"x1": 1, "y1": 2, "x2": 10, "y2": 20}
    listed = {i["uniqueName"]: i for i in client.get_item_list_from_collection(lake, page_size=50)}
    assert len(listed["lake_img03.jpg"]["annotations"]) == 2
    assert listed["lake_img04.jpg"]["annotations"] == []


def test_a_page_costs_a_fixed_number_of_queries(
    client: Client, lake: int, session_factory: sessionmaker[Session], session: Session
) -> None:
    for name in ("lake_img01.jpg", "lake_img02.jpg", "lake_img20.jpg"):
        _annotate(session_factory, name)
    statements: list[str] = []
    bind = session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(bind, "before_cursor_execute", listener)
    try:
        page = list_items(
            session=session, search=ItemQuery(page_size=25), base_url="http://x", show_storage=True
        )
    finally:
        event.remove(bind, "before_cursor_execute", listener)
    assert len(page.items) == 25
    assert sum(len(i.annotations) for i in page.items) == 6
    assert len(statements) == 4  # count, files, tags, annotations


def test_file_details(client: Client, lake: int) -> None:
    details = client.get_file_details("lake_img00.jpg", ["uniqueName", "width", "height"])
    assert details == {"uniqueName": "lake_img00.jpg", "width": 64, "height": 48}
    with pytest.raises(NotFound, match=r"'lake_nope\.jpg'") as info:
        client.get_file_details("lake_nope.jpg")
    assert info.value.code == "file_not_found"
    with pytest.raises(BadRequest, match="Unknown field"):
        client.get_file_details("lake_img00.jpg", ["colour"])


def test_metadata_is_merged_and_null_deletes(
    client: Client, lake: int, api_url: str, make_key: Any
) -> None:
    client.update_file_metadata("lake_img00.jpg", {"camera": "cam 1", "site": "north"})
    updated = client.update_file_metadata(
        "lake_img00.jpg", {"site": None, "score": 0.5, "nested": {"a": [1, 2]}}
    )
    assert updated["metadata"] == {"camera": "cam 1", "score": 0.5, "nested": {"a": [1, 2]}}
    assert client.get_file_details("lake_img00.jpg")["metadata"] == updated["metadata"]
    with pytest.raises(NotFound):
        client.update_file_metadata("lake_nope.jpg", {"a": 1})
    with Client(api_url, make_key("read")) as reader, pytest.raises(Forbidden):
        reader.update_file_metadata("lake_img00.jpg", {"a": 1})


def test_content_streams_the_bytes(client: Client, lake: int, tmp_path: Path, api_url: str) -> None:
    item = client.get_file_details("lake_img05.jpg")
    got = httpx.get(item["url"], headers={"Authorization": f"Bearer {client.api_key}"})
    assert got.status_code == 200
    assert got.content == (tmp_path / "imgs" / "img05.jpg").read_bytes()
    assert got.headers["content-type"] == "image/jpeg"
    assert httpx.get(item["url"]).status_code == 401
    missing = httpx.get(
        f"{api_url}/api/v1/files/99999/content",
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert missing.status_code == 404
    (tmp_path / "imgs" / "img05.jpg").unlink()
    gone = httpx.get(item["url"], headers={"Authorization": f"Bearer {client.api_key}"})
    assert gone.status_code == 404
    assert "gone from storage" in gone.json()["error"]["message"]


def test_bad_filter_and_item_type(client: Client, lake: int, api_url: str) -> None:
    headers = {"Authorization": f"Bearer {client.api_key}"}
    bad = httpx.get(f"{api_url}/api/v1/items", params={"filter": "{not json"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_filter"
    listy = httpx.get(f"{api_url}/api/v1/items", params={"filter": "[1]"}, headers=headers)
    assert listy.status_code == 400
    with pytest.raises(BadRequest, match="item_type"):
        client.get_item_list_from_datalake("audio")
    assert httpx.get(f"{api_url}/api/v1/items").status_code == 401


def test_query_and_filter_reach_the_query_language(
    client: Client, lake: int, tmp_path: Path
) -> None:
    imagegen.image(tmp_path / "big" / "wide.jpg", (128, 48))
    client.upload_files_to_collection(tmp_path / "big", "image", "lake")
    wide = client.get_item_list_from_datalake("image", "width >= 100")
    assert [i["uniqueName"] for i in wide] == ["lake_wide.jpg"]
    assert len(list(client.iter_items(query="width < 100", page_size=10))) == 25
    assert client.get_item_list_from_collection(lake, filter={"annotation_types": ["human"]}) == []
    with pytest.raises(BadRequest) as info:
        client.get_item_list_from_datalake("image", "width >=")
    assert info.value.code == "invalid_query"
    assert "position" in info.value.details
