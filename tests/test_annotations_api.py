"""Per-file annotations over real HTTP: add (validated), list, delete; scopes and 404s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from sdk import BadRequest, Client, Forbidden, NotFound
from tests.test_annotations_factories import LakeImage, make_collection

BOX = {"label": "Bird", "shape": "box", "geometry": {"x1": 10, "y1": 20, "x2": 110, "y2": 70}}


@pytest.fixture
def image(session: Session, tmp_path: Path) -> LakeImage:
    _, images = make_collection(session, tmp_path, "birds", {"nest/img1.jpg": (640, 480)})
    return images["nest/img1.jpg"]


def count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Annotation)) or 0


def test_add_list_and_delete(client: Client, image: LakeImage) -> None:
    polygon = {
        "label": "Wing",
        "shape": "polygon",
        "confidence": 0.7,
        "geometry": {"points": [[1, 2], [30, 2], [15, 40]]},
        "metadata": {"by": "me"},
    }
    created = client.add_annotations(image.unique_name, [BOX, polygon])
    assert [(a.label, a.shape, a.source, a.status) for a in created] == [
        ("Bird", "box", "human", "applied"),
        ("Wing", "polygon", "human", "applied"),
    ]
    assert created[0].geometry == {"x1": 10, "y1": 20, "x2": 110, "y2": 70}
    assert created[1].metadata == {"by": "me"}
    assert created[1].confidence == 0.7

    listed = client.list_annotations(image.unique_name)
    assert [a.id for a in listed] == [a.id for a in created]
    assert client.list_annotations(image.unique_name, source="machine") == []

    client.delete_annotation(image.unique_name, created[0].id)
    assert [a.label for a in client.list_annotations(image.unique_name)] == ["Wing"]
    with pytest.raises(NotFound, match="no annotation"):
        client.delete_annotation(image.unique_name, created[0].id)


def test_annotations_show_on_the_item(
    client: Client, image: LakeImage, api_url: str, admin_key: str
) -> None:
    client.add_annotations(image.unique_name, [BOX])
    response = httpx.get(
        f"{api_url}/api/v1/files/{image.unique_name}",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 200, response.text
    assert [a["label"] for a in response.json()["annotations"]] == ["Bird"]


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (
            {"label": "x", "geometry": {"x1": 10, "y1": 20, "x2": 5, "y2": 70}},
            "geometry",
            "x1 < x2",
        ),
        (
            {"label": "x", "geometry": {"x1": 10, "y1": 20, "x2": 900, "y2": 70}},
            "geometry",
            "outside the 640x480 image",
        ),
        ({"label": "x", "geometry": {"x1": 10}}, "geometry", '"x1", "y1", "x2", "y2"'),
        (
            {"label": "x", "shape": "polygon", "geometry": {"points": [[1, 2], [3, 4]]}},
            "geometry.points",
            "at least 3 points",
        ),
        ({"label": "  ", "geometry": BOX["geometry"]}, "label", "non-empty"),
        ({"label": "x", "confidence": 1.2, "geometry": BOX["geometry"]}, "confidence", "0 and 1"),
    ],
)
def test_invalid_annotations_are_a_400_naming_index_and_field(
    client: Client, image: LakeImage, session: Session, bad: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        client.add_annotations(image.unique_name, [BOX, bad])
    error = caught.value
    assert (error.status, error.code) == (400, "invalid_annotations")
    assert error.details["annotation_index"] == 1
    assert error.details["field"] == field
    assert words in error.message
    assert count(session) == 0  # the valid one was not written either


def test_read_key_reads_but_cannot_write(
    api_url: str, image: LakeImage, make_key: Callable[..., str], client: Client
) -> None:
    created = client.add_annotations(image.unique_name, [BOX])
    with Client(api_url, make_key("read")) as reader:
        assert len(reader.list_annotations(image.unique_name)) == 1
        with pytest.raises(Forbidden) as caught:
            reader.add_annotations(image.unique_name, [BOX])
        assert caught.value.status == 403
        with pytest.raises(Forbidden):
            reader.delete_annotation(image.unique_name, created[0].id)
    with Client(api_url, make_key("write")) as writer:
        assert len(writer.add_annotations(image.unique_name, [BOX])) == 1


def test_no_key_is_401(api_url: str, image: LakeImage) -> None:
    response = httpx.get(f"{api_url}/api/v1/files/{image.unique_name}/annotations")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/files/nope.jpg/annotations", [BOX]),
        ("GET", "/files/nope.jpg/annotations", None),
        ("DELETE", "/files/nope.jpg/annotations/1", None),
    ],
)
def test_unknown_unique_name_is_404(
    api_url: str, admin_key: str, method: str, path: str, body: Any
) -> None:
    response = httpx.request(
        method,
        f"{api_url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "file_not_found"
    assert "Unique names are" in error["message"]


def test_list_is_paginated(client: Client, image: LakeImage, api_url: str, admin_key: str) -> None:
    client.add_annotations(image.unique_name, [BOX] * 5)
    response = httpx.get(
        f"{api_url}/api/v1/files/{image.unique_name}/annotations",
        params={"page_size": 2, "page_index": 2},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    page = response.json()
    assert (page["total"], len(page["items"]), page["page_size"]) == (5, 1, 2)
    assert len(client.list_annotations(image.unique_name)) == 5


def test_unique_names_with_spaces_and_symbols(
    client: Client, session: Session, tmp_path: Path
) -> None:
    _, images = make_collection(session, tmp_path, "odd/names", {"my pics/a #1%.jpg": (50, 50)})
    name = images["my pics/a #1%.jpg"].unique_name
    assert name == "odd/names_my pics_a #1%.jpg"
    client.add_annotations(name, [{"label": "x", "shape": "tag"}])
    assert [a.shape for a in client.list_annotations(name)] == ["tag"]
    client.add_tags(name, ["a/b tag?"])
    client.delete_tag(name, "a/b tag?")
