"""Human tags over real HTTP: add (idempotent), list, delete; scopes and 404s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.db.models import Tag
from sdk import BadRequest, Client, Forbidden, NotFound
from tests.test_annotations_factories import LakeImage, make_collection


@pytest.fixture
def image(session: Session, tmp_path: Path) -> LakeImage:
    _, images = make_collection(session, tmp_path, "pets", {"dog.jpg": (64, 48)})
    return images["dog.jpg"]


def test_add_list_delete(client: Client, image: LakeImage) -> None:
    tags = client.add_tags(image.unique_name, ["dog", "outdoor"])
    assert [(t.name, t.source) for t in tags] == [("dog", "human"), ("outdoor", "human")]
    # Adding again (and a duplicate in the same call) changes nothing.
    assert len(client.add_tags(image.unique_name, ["dog", "dog"])) == 2
    assert [t.name for t in client.add_tags(image.unique_name, "cute")] == [
        "cute",
        "dog",
        "outdoor",
    ]
    client.delete_tag(image.unique_name, "dog")
    assert [t.name for t in client.list_tags(image.unique_name)] == ["cute", "outdoor"]
    with pytest.raises(NotFound, match="no human tag 'dog'"):
        client.delete_tag(image.unique_name, "dog")


def test_deleting_a_human_tag_keeps_the_machine_one(
    client: Client, image: LakeImage, session: Session
) -> None:
    session.execute(
        insert(Tag).values(
            file_id=image.file_id, name="dog", source="machine", confidence=0.9, model_version_id=1
        )
    )
    session.commit()
    client.add_tags(image.unique_name, ["dog"])
    client.delete_tag(image.unique_name, "dog")
    assert [(t.name, t.source, t.confidence) for t in client.list_tags(image.unique_name)] == [
        ("dog", "machine", 0.9)
    ]


def test_blank_tag_is_a_400(client: Client, image: LakeImage) -> None:
    with pytest.raises(BadRequest) as caught:
        client.add_tags(image.unique_name, ["ok", " "])
    assert caught.value.details["location"] == "tags[1]"
    assert client.list_tags(image.unique_name) == []


def test_read_key_cannot_tag(api_url: str, image: LakeImage, make_key: Callable[..., str]) -> None:
    with Client(api_url, make_key("read")) as reader:
        with pytest.raises(Forbidden):
            reader.add_tags(image.unique_name, ["dog"])
        with pytest.raises(Forbidden):
            reader.delete_tag(image.unique_name, "dog")
        assert reader.list_tags(image.unique_name) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/files/nope.jpg/tags"),
        ("GET", "/files/nope.jpg/tags"),
        ("DELETE", "/files/nope.jpg/tags/dog"),
    ],
)
def test_unknown_unique_name_is_404(api_url: str, admin_key: str, method: str, path: str) -> None:
    response = httpx.request(
        method,
        f"{api_url}/api/v1{path}",
        json=[{"name": "dog"}] if method == "POST" else None,
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "file_not_found"
