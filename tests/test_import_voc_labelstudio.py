"""The VOC and Label Studio importers, and the round trip of every export format: annotations
stored in the lake, exported by the writer, imported back through the SDK, come back as they
were (geometry within the format's rounding)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from engine.interop.formats import writer_for
from engine.interop.formats.label_studio import results_for
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions
from engine.lake.formats import label_studio
from sdk import BadRequest, Client
from tests.test_annotations_factories import LakeImage, make_collection

SIZES = {"a.jpg": (64, 48), "sub/b.jpg": (80, 60), "c.png": (50, 50)}
LABELS = ("circle", "square", "triangle")
SEED = "seed"


class FolderSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture
def lake(session: Session, tmp_path: Path) -> tuple[int, dict[str, LakeImage]]:
    return make_collection(session, tmp_path / "imgs", "shapes", SIZES)


def seed(session: Session, images: dict[str, LakeImage], rows: list[dict[str, Any]]) -> None:
    """`rows`: annotations keyed by image path instead of file id."""
    session.execute(
        insert(Annotation),
        [
            {
                "file_id": images[row["image"]].file_id,
                "label": row["label"],
                "shape": row["shape"],
                "geometry": row["geometry"],
                "confidence": row.get("confidence"),
                "source": row.get("source", "human"),
                "status": "applied",
                "operation_id": SEED,
                "metadata_": {},
            }
            for row in rows
        ],
    )
    session.commit()


BOXES = [
    {
        "image": "a.jpg",
        "label": "circle",
        "shape": "box",
        "geometry": {"x1": 3, "y1": 4.5, "x2": 40, "y2": 30},
    },
    {
        "image": "sub/b.jpg",
        "label": "square",
        "shape": "box",
        "geometry": {"x1": 0, "y1": 0, "x2": 80, "y2": 60},
    },
    {
        "image": "sub/b.jpg",
        "label": "triangle",
        "shape": "box",
        "geometry": {"x1": 10.25, "y1": 20, "x2": 30, "y2": 41},
    },
]
POLYGONS = [
    {
        "image": "a.jpg",
        "label": "triangle",
        "shape": "polygon",
        "geometry": {"points": [[10, 5], [60, 5], [35.5, 47]]},
    },
    {
        "image": "c.png",
        "label": "square",
        "shape": "polygon",
        "geometry": {"points": [[1, 1], [49, 1], [49, 49], [1, 49]]},
    },
]


def scored(rows: list[dict[str, Any]], source: str = "machine") -> list[dict[str, Any]]:
    return [{**row, "source": source, "confidence": 0.5 + 0.1 * i} for i, row in enumerate(rows)]


def export_lake(
    session: Session,
    images: dict[str, LakeImage],
    format: str,
    root: Path,
    **options: Any,
) -> Path:
    """Export the seeded annotations of every image, as the export service hands them over."""
    session.expire_all()
    writer = writer_for(format, FolderSink(root), ExportOptions(labels=LABELS, **options))
    for path, image in images.items():
        rows = session.scalars(
            select(Annotation)
            .where(Annotation.file_id == image.file_id, Annotation.operation_id == SEED)
            .order_by(Annotation.id)
        )
        annotations = tuple(
            ExportAnnotation(
                id=r.id,
                label=r.label,
                shape=r.shape,
                geometry=r.geometry,
                confidence=r.confidence,
                source=r.source,
                status=r.status,
                metadata=r.metadata_,
            )
            for r in rows
        )
        media = image.path.read_bytes()
        writer.add(
            ExportImage(
                file_id=image.file_id,
                unique_name=image.unique_name,
                path=path,
                width=image.width,
                height=image.height,
                sha256="0" * 64,
                size_bytes=len(media),
                content_type="image",
                annotations=annotations,
            ),
            media,
        )
    writer.finish()
    return root


def annotations(session: Session, operation: str) -> list[tuple[Any, ...]]:
    """Stored annotations of operations starting with `operation`, geometry rounded to 0.01 px."""
    session.expire_all()
    rows = session.scalars(
        select(Annotation).where(Annotation.operation_id.startswith(operation))
    ).all()

    def rounded(geometry: dict[str, Any]) -> str:
        def walk(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return round(float(value), 2) + 0.0

        return json.dumps(walk(geometry), sort_keys=True)

    return sorted(
        (r.file_id, r.label, r.shape, rounded(r.geometry), r.source, r.confidence) for r in rows
    )


def round_trip(session: Session, imported_operation: str) -> None:
    seeded = annotations(session, SEED)
    assert seeded
    assert annotations(session, imported_operation) == seeded


# -- round trips ----------------------------------------------------------------------------------
def test_metalake_json_round_trip_keeps_every_shape(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    _, images = lake
    keypoints = {
        "image": "c.png",
        "label": "circle",
        "shape": "keypoints",
        "geometry": {"points": [[5, 5, 2], [0, 0, 0], [20.5, 30, 1]]},
        "confidence": 0.25,
    }
    tag = {"image": "a.jpg", "label": "square", "shape": "tag", "geometry": {}}
    seed(session, images, [*BOXES, *POLYGONS, keypoints, tag])
    root = export_lake(session, images, "metalake_json", tmp_path / "out")
    document = json.loads((root / "annotations.json").read_text())
    assert {e["status"] for i in document["images"] for e in i["annotations"]} == {"applied"}
    client.upload_annotations_for_folder(
        "shapes", "back", root / "annotations.json", "mixed", is_normalized=False
    )
    round_trip(session, "back")


def test_coco_round_trip(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    seed(session, images, scored([*BOXES, *POLYGONS]))
    root = export_lake(session, images, "coco", tmp_path / "out")
    report = client.import_annotations(
        collection_id, root / "annotations.json", "coco", "machine", operation_id="back"
    )
    assert (report.written, report.matched_images) == (5, 3)
    round_trip(session, "back")


@pytest.mark.parametrize(("task", "rows"), [("detect", BOXES), ("segment", POLYGONS)])
def test_yolo_round_trip(
    client: Client,
    session: Session,
    lake: tuple[int, dict[str, LakeImage]],
    tmp_path: Path,
    task: str,
    rows: list[dict[str, Any]],
) -> None:
    collection_id, images = lake
    seed(session, images, rows)  # YOLO carries no scores
    root = export_lake(session, images, "yolo", tmp_path / "out", yolo_task=task)
    report = client.import_annotations(collection_id, root, "yolo", operation_id="back")
    assert (report.written, report.matched_images, report.unknown_images) == (len(rows), 3, [])
    round_trip(session, "back")


def test_voc_round_trip(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    seed(session, images, scored(BOXES))
    root = export_lake(session, images, "voc", tmp_path / "out")
    assert (root / "Annotations" / "sub" / "b.xml").is_file()
    report = client.import_annotations(collection_id, root, "voc", "machine", operation_id="back")
    assert (report.written, report.matched_images) == (3, 3)
    round_trip(session, "back")


def test_label_studio_round_trip_keeps_human_and_machine_apart(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    seed(session, images, [*BOXES, *scored(POLYGONS)])
    root = export_lake(session, images, "label_studio", tmp_path / "out")
    report = client.import_annotations(collection_id, root / "tasks.json", "label_studio")
    assert report.operation_id.startswith("import:label_studio:")
    assert (report.written, report.replaced, report.matched_images) == (5, 0, 3)
    round_trip(session, report.operation_id)

    again = client.import_annotations(collection_id, root / "tasks.json", "label_studio")
    assert (again.operation_id, again.written, again.replaced) == (report.operation_id, 5, 5)
    round_trip(session, report.operation_id)


# -- VOC ------------------------------------------------------------------------------------------
def voc_xml(filename: str, objects: str, size: tuple[int, int] = (64, 48)) -> str:
    return (
        f"<annotation><folder>VOC2012</folder><filename>{filename}</filename>"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"{objects}</annotation>"
    )


OBJECT = (
    "<object><name>circle</name><difficult>1</difficult><truncated>0</truncated>"
    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
)


def test_voc_reads_objects_matches_by_folder_and_keeps_flags(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    root = tmp_path / "VOC2012"
    (root / "Annotations" / "sub").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text(voc_xml("a.jpg", OBJECT * 2))
    (root / "Annotations" / "sub" / "b.xml").write_text(
        voc_xml("b.jpg", OBJECT.replace("circle", "square"), (80, 60))
    )
    (root / "Annotations" / "gone.xml").write_text(voc_xml("gone.jpg", OBJECT))
    report = client.import_annotations(collection_id, root, "voc")
    assert report.operation_id.startswith("import:voc:")
    assert (report.written, report.matched_images) == (3, 2)
    assert report.unknown_images == ["gone.jpg"]
    session.expire_all()
    stored = session.scalars(select(Annotation).order_by(Annotation.id)).all()
    assert [(r.file_id, r.label, r.shape, r.source) for r in stored] == [
        (images["a.jpg"].file_id, "circle", "box", "human"),
        (images["a.jpg"].file_id, "circle", "box", "human"),
        (images["sub/b.jpg"].file_id, "square", "box", "human"),
    ]
    assert stored[0].geometry == {"x1": 1, "y1": 2, "x2": 30, "y2": 40}
    assert stored[0].metadata_ == {"difficult": 1}


@pytest.mark.parametrize(
    ("document", "location", "words"),
    [
        ("<annotation><filename>a.jpg</filename", "Annotations/a.xml", "not well-formed XML"),
        ("<notvoc/>", "Annotations/a.xml", "<annotation>"),
        (
            '<!DOCTYPE x [<!ENTITY e "boom">]><annotation><filename>&e;</filename></annotation>',
            "Annotations/a.xml",
            "entities",
        ),
        (
            voc_xml("a.jpg", OBJECT.replace("<xmax>30", "<xmax>wide")),
            "Annotations/a.xml:object[0]",
            "xmax='wide'",
        ),
        (
            voc_xml("a.jpg", OBJECT.replace("circle", " ")),
            "Annotations/a.xml:object[0]",
            "non-empty",
        ),
        (voc_xml("a.jpg", OBJECT, (640, 480)), "Annotations/a.xml", "640x480"),
        (
            voc_xml("a.jpg", OBJECT.replace("<xmax>30", "<xmax>300")),
            "Annotations/a.xml:object[0]",
            "outside",
        ),
    ],
)
def test_voc_problems_name_the_document_and_write_nothing(
    client: Client,
    session: Session,
    lake: tuple[int, dict[str, LakeImage]],
    tmp_path: Path,
    document: str,
    location: str,
    words: str,
) -> None:
    collection_id, _ = lake
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(document)
    with pytest.raises(BadRequest) as caught:
        client.import_annotations(collection_id, tmp_path, "voc")
    assert caught.value.code == "invalid_annotations"
    assert caught.value.details["location"] == location
    assert words in caught.value.message
    assert session.scalars(select(Annotation)).all() == []


# -- Label Studio ---------------------------------------------------------------------------------
def rectangle(label: str, x: float, y: float, w: float, h: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 64,
        "original_height": 48,
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
        **extra,
    }


def test_label_studio_project_export_reads_urls_skips_cancelled_and_turns_rotations(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/upload/3/0f1c2b3a-a.jpg"},
            "annotations": [
                {"was_cancelled": False, "result": [rectangle("circle", 25, 50, 50, 25)]},
                {"was_cancelled": True, "result": [rectangle("square", 0, 0, 10, 10)]},
            ],
            "predictions": [
                {
                    "model_version": "v1",
                    "score": 0.6,
                    "result": [
                        rectangle("square", 0, 0, 50, 50),
                        {**rectangle("triangle", 10, 10, 10, 10), "type": "keypointlabels"},
                    ],
                }
            ],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=shapes/sub/b.jpg"},
            "annotations": [
                {
                    "result": [
                        {
                            **rectangle("square", 50, 50, 10, 20, score=0.9),
                            "original_width": 80,
                            "original_height": 60,
                        }
                    ]
                }
            ],
        },
        {
            "data": {"image": "s3://bucket/prefix/c.png"},
            "annotations": [
                {
                    "result": [
                        {
                            **rectangle("triangle", 10, 10, 20, 20),
                            "original_width": 50,
                            "original_height": 50,
                            "value": {
                                "x": 50,
                                "y": 10,
                                "width": 20,
                                "height": 20,
                                "rotation": 90,
                                "rectanglelabels": ["triangle"],
                            },
                        },
                        {
                            "type": "choices",
                            "from_name": "label_tags",
                            "to_name": "image",
                            "value": {"choices": ["circle"]},
                        },
                    ]
                }
            ],
        },
    ]
    path = tmp_path / "project.json"
    path.write_text(json.dumps(tasks))
    report = client.import_annotations(collection_id, path, "label_studio")
    assert (report.written, report.matched_images, report.unknown_images) == (5, 3, [])
    session.expire_all()
    got = {
        (r.file_id, r.label, r.shape, r.source, r.confidence): r.geometry
        for r in session.scalars(select(Annotation))
    }
    a, b, c = (images[k].file_id for k in ("a.jpg", "sub/b.jpg", "c.png"))
    assert got == {
        (a, "circle", "box", "human", None): {"x1": 16, "y1": 24, "x2": 48, "y2": 36},
        (a, "square", "box", "machine", 0.6): {"x1": 0, "y1": 0, "x2": 32, "y2": 24},
        (b, "square", "box", "human", 0.9): {"x1": 40, "y1": 30, "x2": 48, "y2": 42},
        (c, "triangle", "polygon", "human", None): got[(c, "triangle", "polygon", "human", None)],
        (c, "circle", "tag", "human", None): {},
    }
    # A 10x10 px square at (25, 5) turned 90 degrees clockwise about its top-left corner.
    points = got[(c, "triangle", "polygon", "human", None)]["points"]
    assert [[round(x, 3), round(y, 3)] for x, y in points] == [[25, 5], [25, 15], [15, 15], [15, 5]]


def test_label_studio_problems_write_nothing(
    client: Client, session: Session, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, _ = lake
    path = tmp_path / "project.json"
    cases = [
        ({"data": {}}, "$", "list of tasks"),
        (
            [
                {
                    "data": {"image": "a.jpg"},
                    "annotations": [
                        {"result": [rectangle("circle", 0, 0, 10, 10, original_width=640)]}
                    ],
                }
            ],
            "tasks[0]",
            "640x48",
        ),
        (
            [
                {
                    "data": {"image": "a.jpg"},
                    "predictions": [{"result": [rectangle("circle", 0, 0, 10, 10, score=3)]}],
                }
            ],
            "tasks[0].predictions[0].result[0]",
            "between 0 and 1",
        ),
        ([{"data": {"text": 5}}], "tasks[0]", "URL or path"),
    ]
    for document, location, words in cases:
        path.write_text(json.dumps(document))
        with pytest.raises(BadRequest) as caught:
            client.import_annotations(collection_id, path, "label_studio")
        assert caught.value.details["location"] == location, caught.value.message
        assert words in caught.value.message
    assert session.scalars(select(Annotation)).all() == []


def test_label_studio_image_paths_and_results_for_read_back() -> None:
    assert label_studio.image_path("/data/upload/12/abcdef01-nest%20a.jpg") == "nest a.jpg"
    assert label_studio.image_path("/data/local-files/?d=imgs/x/y.png") == "imgs/x/y.png"
    assert label_studio.image_path("https://h/files/a/b.jpg?X-Sig=1") == "files/a/b.jpg"
    assert label_studio.image_path("gs://bucket/a/b.jpg") == "a/b.jpg"
    assert label_studio.image_path("images/a/b.jpg") == "images/a/b.jpg"
    box = ExportAnnotation(
        id=1,
        label="circle",
        shape="box",
        geometry={"x1": 3, "y1": 4, "x2": 33, "y2": 24},
        confidence=None,
        source="human",
        status="applied",
    )
    task = {
        "data": {"image": "x.jpg"},
        "annotations": [{"result": results_for([box], width=64, height=48)}],
    }
    (image,) = label_studio.parse([task]).human
    (ann,) = image.annotations
    assert image.declared_size == (64, 48)
    assert [round(v, 9) for v in ann.values[0]] == [3, 4, 33, 24]
