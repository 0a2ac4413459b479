"""`import_annotations` from COCO and YOLO through the SDK, with known geometry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from sdk import BadRequest, Client
from tests.test_annotations_factories import make_collection


def stored(session: Session) -> list[tuple[int, str, str, dict[str, Any], str, float | None]]:
    session.expire_all()
    rows = session.scalars(select(Annotation).order_by(Annotation.id))
    return [(r.file_id, r.label, r.shape, r.geometry, r.source, r.confidence) for r in rows]


# -- COCO -----------------------------------------------------------------------------------------
COCO: dict[str, Any] = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
        {"id": 2, "file_name": "sub/b.jpg", "width": 320, "height": 240},
        {"id": 3, "file_name": "missing.jpg", "width": 10, "height": 10},
    ],
    "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [100.5, 50, 200, 150],
            "area": 30000,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 2,
            "category_id": 2,
            "bbox": [10, 20, 40, 40],
            "iscrowd": 0,
            "segmentation": [[10, 20, 50, 20, 50, 60, 10, 60]],
            "score": 0.75,
        },
    ],
}


@pytest.fixture
def coco_lake(session: Session, tmp_path: Path) -> tuple[int, dict[str, int]]:
    collection_id, images = make_collection(
        session, tmp_path / "imgs", "shapes", {"a.jpg": (640, 480), "sub/b.jpg": (320, 240)}
    )
    return collection_id, {k: v.file_id for k, v in images.items()}


def test_coco_import_converts_and_reimport_replaces(
    client: Client, coco_lake: tuple[int, dict[str, int]], tmp_path: Path, session: Session
) -> None:
    collection_id, ids = coco_lake
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(COCO))
    report = client.import_annotations(collection_id, path, "coco")
    assert report.operation_id.startswith("import:coco:")
    assert len(report.operation_id) == 76
    assert (report.written, report.replaced, report.matched_images) == (2, 0, 2)
    assert report.unknown_images == ["missing.jpg"]
    assert stored(session) == [
        (
            ids["a.jpg"],
            "circle",
            "box",
            {"x1": 100.5, "y1": 50, "x2": 300.5, "y2": 200},
            "human",
            None,
        ),
        (
            ids["sub/b.jpg"],
            "square",
            "polygon",
            {"points": [[10, 20], [50, 20], [50, 60], [10, 60]]},
            "human",
            0.75,
        ),
    ]

    # The same content again (re-serialised differently, from a folder): replaced, not doubled.
    folder = tmp_path / "coco"
    folder.mkdir()
    (folder / "annotations.json").write_text(json.dumps(COCO, indent=4, sort_keys=True))
    again = client.import_annotations(collection_id, folder, "coco", "machine")
    assert (again.operation_id, again.written, again.replaced) == (report.operation_id, 2, 2)
    assert [row[4] for row in stored(session)] == ["machine", "machine"]


def test_coco_size_mismatch_and_bad_category_write_nothing(
    client: Client, coco_lake: tuple[int, dict[str, int]], tmp_path: Path, session: Session
) -> None:
    collection_id, _ = coco_lake
    resized = json.loads(json.dumps(COCO))
    resized["images"][1]["width"] = 640
    path = tmp_path / "resized.json"
    path.write_text(json.dumps(resized))
    with pytest.raises(BadRequest) as caught:
        client.import_annotations(collection_id, path)
    assert caught.value.details["location"] == "images[1]"
    assert "640x240" in caught.value.message
    assert "320x240" in caught.value.message

    broken = json.loads(json.dumps(COCO))
    broken["annotations"][1]["category_id"] = 9
    path.write_text(json.dumps(broken))
    with pytest.raises(BadRequest) as caught:
        client.import_annotations(collection_id, path)
    assert (caught.value.details["annotation_index"], caught.value.details["field"]) == (
        1,
        "category_id",
    )
    assert stored(session) == []


# -- YOLO -----------------------------------------------------------------------------------------
def write_yolo(root: Path, labels: dict[str, str], **extra: str) -> Path:
    for relative, text in {**labels, **extra}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_yolo_ultralytics_layout(client: Client, session: Session, tmp_path: Path) -> None:
    # The collection was uploaded from dataset/images; labels sit in dataset/labels.
    collection_id, images = make_collection(
        session,
        tmp_path / "dataset" / "images",
        "yolo",
        {"train/a.jpg": (640, 480), "train/b.png": (100, 50), "val/c.jpg": (64, 64)},
    )
    root = write_yolo(
        tmp_path / "dataset",
        {
            "labels/train/a.txt": "0 0.5 0.5 0.25 0.5\n1 0.5 0.5 0.1 0.1 0.6\n",
            "labels/train/b.txt": "1 0.1 0.2 0.5 0.2 0.3 0.8\n",
            "labels/val/c.txt": "",
            "labels/val/gone.txt": "0 0.5 0.5 0.1 0.1\n",
        },
        **{"data.yaml": "path: .\ntrain: images/train\nnames:\n  0: circle\n  1: square\n"},
    )
    report = client.import_annotations(collection_id, root, format="yolo")
    assert (report.written, report.matched_images) == (3, 3)
    assert report.unknown_images == ["labels/val/gone"]
    a, b = images["train/a.jpg"].file_id, images["train/b.png"].file_id
    assert stored(session) == [
        (a, "circle", "box", {"x1": 240, "y1": 120, "x2": 400, "y2": 360}, "human", None),
        (a, "square", "box", {"x1": 288, "y1": 216, "x2": 352, "y2": 264}, "human", 0.6),
        (b, "square", "polygon", {"points": [[10, 10], [50, 10], [30, 40]]}, "human", None),
    ]
    again = client.import_annotations(collection_id, root / "data.yaml", "yolo")
    assert (again.operation_id, again.written, again.replaced) == (report.operation_id, 3, 3)

    # An edited label file under an explicit operation id replaces the earlier import.
    (root / "labels/train/b.txt").write_text("")
    edited = client.import_annotations(
        collection_id, root, "yolo", operation_id=report.operation_id
    )
    assert (edited.written, edited.replaced) == (2, 3)


def test_yolo_flat_folder_with_classes_txt(
    client: Client, session: Session, tmp_path: Path
) -> None:
    collection_id, _images = make_collection(
        session, tmp_path / "flat", "flat", {"x.jpg": (200, 200)}
    )
    write_yolo(tmp_path / "flat", {"x.txt": "0 0.5 0.5 0.5 0.5\n"}, **{"classes.txt": "dog\n"})
    report = client.import_annotations(collection_id, tmp_path / "flat", "yolo")
    assert report.written == 1
    assert stored(session)[0][1:4] == ("dog", "box", {"x1": 50, "y1": 50, "x2": 150, "y2": 150})


def test_yolo_errors_name_file_and_line(client: Client, session: Session, tmp_path: Path) -> None:
    collection_id, _ = make_collection(session, tmp_path / "imgs", "bad", {"x.jpg": (20, 20)})
    root = write_yolo(
        tmp_path / "labels_root",
        {"x.txt": "0 0.5 0.5 0.5 0.5\n3 0.5 0.5 0.5 0.5\n"},
        **{"classes.txt": "dog\n"},
    )
    with pytest.raises(BadRequest) as caught:
        client.import_annotations(collection_id, root, "yolo")
    assert (caught.value.details["location"], caught.value.details["field"]) == ("x.txt:2", "class")
    (root / "classes.txt").unlink()
    with pytest.raises(BadRequest, match=r"data\.yaml"):
        client.import_annotations(collection_id, root, "yolo")
    assert stored(session) == []


def test_import_input_errors(client: Client, tmp_path: Path, session: Session) -> None:
    collection_id, _ = make_collection(session, tmp_path / "imgs", "c", {"x.jpg": (20, 20)})
    with pytest.raises(BadRequest, match="does not exist"):
        client.import_annotations(collection_id, tmp_path / "nope.json")
    with pytest.raises(BadRequest, match="'coco', 'yolo', 'voc' or 'label_studio', not 'cvat'"):
        client.import_annotations(collection_id, tmp_path, "cvat")
    with pytest.raises(BadRequest, match=r"No \.txt label files"):
        client.import_annotations(collection_id, tmp_path / "imgs", "yolo")
