"""`upload_annotations_for_folder` and `download_annotations` through the SDK, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from sdk import BadRequest, Client, Forbidden, NotFound
from tests.test_annotations_factories import LakeImage, make_collection


@pytest.fixture
def lake(session: Session, tmp_path: Path) -> tuple[int, dict[str, LakeImage]]:
    return make_collection(
        session, tmp_path / "birds", "birds", {"a.jpg": (640, 480), "nest/b.jpg": (200, 100)}
    )


def write(tmp_path: Path, document: Any, name: str = "annotations.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def stored(session: Session) -> list[tuple[str, str, dict[str, Any], str, str | None]]:
    session.expire_all()
    rows = session.scalars(select(Annotation).order_by(Annotation.id))
    return [(r.label, r.shape, r.geometry, r.source, r.operation_id) for r in rows]


DOCUMENT = {
    "images": [
        {
            "image": "a.jpg",
            "annotations": [
                {
                    "bbox": [10, 20, 100, 50],
                    "label": "Bird",
                    "confidence": 0.9,
                    "metadata": {"n": 1},
                },
                {"bbox": [0, 0, 640, 480], "label": "Sky"},
            ],
        },
        {"image": "nest/b.jpg", "annotations": [{"bbox": [5, 5, 10, 10], "label": "Egg"}]},
    ]
}


def test_upload_pixel_boxes(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path, session: Session
) -> None:
    report = client.upload_annotations_for_folder(
        "birds", "op-1", write(tmp_path, DOCUMENT), "rectangle", False, False
    )
    assert report == {
        "operation_id": "op-1",
        "written": 3,
        "replaced": 0,
        "matched_images": 2,
        "unknown_images": [],
        "ambiguous_images": [],
    }
    assert stored(session) == [
        ("Bird", "box", {"x1": 10, "y1": 20, "x2": 110, "y2": 70}, "human", "op-1"),
        ("Sky", "box", {"x1": 0, "y1": 0, "x2": 640, "y2": 480}, "human", "op-1"),
        ("Egg", "box", {"x1": 5, "y1": 5, "x2": 15, "y2": 15}, "human", "op-1"),
    ]
    [bird, _] = client.list_annotations(lake[1]["a.jpg"].unique_name)
    assert (bird.confidence, bird.metadata) == (0.9, {"n": 1})


def test_same_operation_replaces_and_others_stay(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path, session: Session
) -> None:
    a = lake[1]["a.jpg"].unique_name
    client.add_annotations(
        a, [{"label": "Manual", "geometry": {"x1": 1, "y1": 1, "x2": 2, "y2": 2}}]
    )
    client.upload_annotations_for_folder("birds", "op-1", write(tmp_path, DOCUMENT), "box")
    client.upload_annotations_for_folder("birds", "op-2", write(tmp_path, DOCUMENT), "box")
    second = {
        "images": [{"image": "a.jpg", "annotations": [{"bbox": [1, 1, 4, 4], "label": "Robin"}]}]
    }
    report = client.upload_annotations_for_folder("birds", "op-1", write(tmp_path, second), "box")
    assert (report["written"], report["replaced"]) == (1, 3)
    labels = sorted((label, op) for label, _, _, _, op in stored(session))
    assert labels == [
        ("Bird", "op-2"),
        ("Egg", "op-2"),
        ("Manual", None),
        ("Robin", "op-1"),
        ("Sky", "op-2"),
    ]
    # Uploading the same file twice leaves one copy.
    client.upload_annotations_for_folder("birds", "op-1", write(tmp_path, second), "box")
    assert [op for *_, op in stored(session)].count("op-1") == 1


def test_normalized_polygons_from_a_model_run(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path, session: Session
) -> None:
    document = {
        "images": [
            {
                "image": "nest/b.jpg",
                "annotations": [
                    {"polygon": [[0, 0], [0.5, 0], [0.5, 0.5]], "label": "Egg", "confidence": 0.4}
                ],
            }
        ]
    }
    client.upload_annotations_for_folder(
        "birds", "run-7", write(tmp_path, document), "polygon", True, True
    )
    assert stored(session) == [
        ("Egg", "polygon", {"points": [[0, 0], [100, 0], [100, 50]]}, "machine", "run-7")
    ]

    boxes = {
        "images": [
            {"image": "a.jpg", "annotations": [{"bbox": [0.25, 0.5, 0.5, 0.25], "label": "Bird"}]}
        ]
    }
    client.upload_annotations_for_folder(
        "birds", "run-8", write(tmp_path, boxes), "box", is_normalized=True
    )
    assert stored(session)[-1][2] == {"x1": 160, "y1": 240, "x2": 480, "y2": 360}


def test_unknown_images_are_reported_unless_all_are_unknown(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path, session: Session
) -> None:
    document = {"images": [*DOCUMENT["images"], {"image": "ghost.jpg", "annotations": []}]}
    report = client.upload_annotations_for_folder("birds", "op", write(tmp_path, document), "box")
    assert (report["written"], report["unknown_images"]) == (3, ["ghost.jpg"])

    ghosts = {
        "images": [
            {"image": "ghost.jpg", "annotations": []},
            {"image": "nest/zzz.jpg", "annotations": []},
        ]
    }
    with pytest.raises(BadRequest) as caught:
        client.upload_annotations_for_folder("birds", "op", write(tmp_path, ghosts), "box")
    assert caught.value.code == "no_images_matched"
    assert caught.value.details["unknown_images"] == ["ghost.jpg", "nest/zzz.jpg"]
    assert len(stored(session)) == 3  # the earlier set is intact


@pytest.mark.parametrize(
    ("document", "location", "field"),
    [
        (
            {
                "images": [
                    {"image": "a.jpg", "annotations": [{"bbox": [600, 10, 100, 10], "label": "x"}]}
                ]
            },
            "images[0].annotations[0]",
            "bbox",
        ),
        (
            {
                "images": [
                    {"image": "a.jpg", "annotations": []},
                    {"image": "nest/b.jpg", "annotations": [{"bbox": [1, 1, 1, 1]}]},
                ]
            },
            "images[1].annotations[0]",
            "label",
        ),
        (
            {
                "images": [
                    {
                        "image": "a.jpg",
                        "annotations": [{"polygon": [[1, 1], [2, 2], [3, 1]], "label": "x"}],
                    }
                ]
            },
            "images[0].annotations[0]",
            "bbox",
        ),
        ({"pictures": []}, "$", "images"),
    ],
)
def test_invalid_upload_is_a_400_and_writes_nothing(
    client: Client,
    lake: tuple[int, dict[str, LakeImage]],
    tmp_path: Path,
    session: Session,
    document: Any,
    location: str,
    field: str,
) -> None:
    client.upload_annotations_for_folder("birds", "op", write(tmp_path, DOCUMENT), "box")
    before = stored(session)
    with pytest.raises(BadRequest) as caught:
        client.upload_annotations_for_folder("birds", "op", write(tmp_path, document), "box")
    assert (caught.value.status, caught.value.code) == (400, "invalid_annotations")
    assert (caught.value.details["location"], caught.value.details["field"]) == (location, field)
    assert location in caught.value.message
    assert stored(session) == before


def test_bad_json_is_refused_before_sending(
    client: Client, tmp_path: Path, lake: tuple[int, dict[str, LakeImage]]
) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"images": [}')
    with pytest.raises(BadRequest, match=r"not valid JSON.*line 1 column 13"):
        client.upload_annotations_for_folder("birds", "op", path, "box")


def test_scopes_and_unknown_collection(
    api_url: str,
    make_key: Callable[..., str],
    client: Client,
    tmp_path: Path,
    lake: tuple[int, dict[str, LakeImage]],
) -> None:
    path = write(tmp_path, DOCUMENT)
    with Client(api_url, make_key("read")) as reader, pytest.raises(Forbidden):
        reader.upload_annotations_for_folder("birds", "op", path, "box")
    with pytest.raises(NotFound) as caught:
        client.upload_annotations_for_folder("no such", "op", path, "box")
    assert caught.value.code == "collection_not_found"


# -- download -------------------------------------------------------------------------------------
def test_download_writes_the_upload_format_and_the_files(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path, session: Session
) -> None:
    collection_id, images = lake
    document = {
        "images": [
            *DOCUMENT["images"],
            {
                "image": "a.jpg",
                "annotations": [{"polygon": [[1, 1], [9, 1], [5, 8]], "label": "Leaf"}],
            },
        ]
    }
    client.upload_annotations_for_folder("birds", "op", write(tmp_path, document), "mixed")
    session.execute(
        insert(Annotation).values(
            file_id=images["a.jpg"].file_id,
            label="Bird",
            shape="box",
            source="machine",
            confidence=0.5,
            model_version_id=7,
            geometry={"x1": 1.5, "y1": 2, "x2": 3, "y2": 4},
        )
    )
    session.commit()

    out = client.download_annotations(collection_id, output_dir=tmp_path / "export")
    exported = json.loads((out / "annotations.json").read_text())
    by_image = {i["image"]: i for i in exported["images"]}
    assert sorted(by_image) == ["a.jpg", "nest_b.jpg"]
    a = by_image["a.jpg"]
    assert (a["unique_name"], a["width"], a["height"]) == ("birds_a.jpg", 640, 480)
    assert [
        (x["label"], x.get("bbox"), x.get("polygon"), x["source"]) for x in a["annotations"]
    ] == [
        ("Bird", [10, 20, 100, 50], None, "human"),
        ("Sky", [0, 0, 640, 480], None, "human"),
        ("Leaf", None, [[1, 1], [9, 1], [5, 8]], "human"),
        ("Bird", [1.5, 2, 1.5, 2], None, "machine"),
    ]
    assert a["annotations"][0]["metadata"] == {"n": 1}
    for name, image in (("a.jpg", images["a.jpg"]), ("nest_b.jpg", images["nest/b.jpg"])):
        assert (out / "images" / name).read_bytes() == image.path.read_bytes()

    only_model = client.download_annotations(
        collection_id, 7, output_dir=tmp_path / "m", include_files=False
    )
    exported = json.loads((only_model / "annotations.json").read_text())
    assert [[x["label"] for x in i["annotations"]] for i in exported["images"]] == [["Bird"], []]
    assert exported["images"][0]["annotations"][0]["model_version_id"] == 7
    assert not (only_model / "images").exists()


def test_a_download_uploads_back_unchanged(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path, session: Session
) -> None:
    collection_id, _ = lake
    client.upload_annotations_for_folder("birds", "op", write(tmp_path, DOCUMENT), "box")
    out = client.download_annotations(
        collection_id, output_dir=tmp_path / "export", include_files=False
    )
    report = client.upload_annotations_for_folder(
        "birds", "copy", out / "annotations.json", "mixed"
    )
    assert (report["written"], report["unknown_images"]) == (3, [])
    rows = stored(session)
    assert [r[:3] for r in rows if r[4] == "copy"] == [r[:3] for r in rows if r[4] == "op"]


def test_download_of_unknown_collection_is_404(client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        client.download_annotations(999, output_dir=tmp_path / "x")


def test_concurrent_uploads_of_one_operation_leave_one_set(
    api_url: str,
    admin_key: str,
    lake: tuple[int, dict[str, LakeImage]],
    tmp_path: Path,
    session: Session,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = write(tmp_path, DOCUMENT)

    def upload(_: int) -> int:
        with Client(api_url, admin_key) as c:
            return c.upload_annotations_for_folder("birds", "op", path, "box")["written"]

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(upload, range(6))) == [3] * 6
    assert len(stored(session)) == 3
