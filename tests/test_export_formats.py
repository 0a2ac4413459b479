"""The export writers, read back by the third-party readers each format is made for:
pycocotools (COCO), ultralytics (YOLO), torchvision's VOCDetection (VOC), and the percent math
of Label Studio's results. Records come from the generated shapes scenes, whose boxes and
polygons are known exactly."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from engine.errors import ExportNotPossible, UnknownExportFormat
from engine.interop.formats import IMAGE_ONLY, WRITERS, writer_for
from engine.interop.formats.label_studio import LabelStudioWriter, label_config, results_for
from engine.interop.formats.metalake_json import MetalakeJsonWriter
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions, Split
from tests.fixtures.shapes import CLASSES, polygon_mask, scene

SIZE = (200, 150)  # not square, so a swapped width and height shows
OPTIONS = ExportOptions(labels=CLASSES)


class FolderSink:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[str] = []

    def write(self, path: str, data: bytes) -> None:
        assert path not in self.written, f"{path} written twice"
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.written.append(path)


def jpeg(index: int) -> bytes:
    buffer = io.BytesIO()
    scene(index, size=SIZE).image.convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def records(
    count: int,
    *,
    shape: str = "box",
    source: str = "human",
    shift: float = 0.0,
    splits: tuple[Split | None, ...] = (None,),
) -> list[tuple[ExportImage, bytes]]:
    """Scenes 0..count-1 as export records: one annotation per drawn shape. `shift` moves each
    box right by that fraction of its width (machine sets scored against human ones)."""
    made = []
    for i in range(count):
        truth = scene(i, size=SIZE)
        annotations = []
        for k, s in enumerate(truth.shapes):
            x1, y1, x2, y2 = s.box
            dx = shift * (x2 - x1)
            geometry: dict[str, Any] = (
                {"x1": x1 + dx, "y1": y1, "x2": x2 + dx, "y2": y2}
                if shape == "box"
                else {"points": [[x + dx, y] for x, y in s.polygon]}
            )
            annotations.append(
                ExportAnnotation(
                    id=100 * i + k + 1,
                    label=s.label,
                    shape=shape,
                    geometry=geometry,
                    confidence=0.5 + 0.1 * k if source == "machine" else None,
                    source=source,
                    status="applied",
                    model_version_id=7 if source == "machine" else None,
                )
            )
        media = jpeg(i)
        image = ExportImage(
            file_id=i + 1,
            unique_name=f"shapes_set{i % 2}_img{i}.jpg",
            path=f"set{i % 2}/img{i}.jpg",
            width=SIZE[0],
            height=SIZE[1],
            sha256=f"{i:064x}",
            size_bytes=len(media),
            content_type="image",
            annotations=tuple(annotations),
            split=splits[i % len(splits)],
        )
        made.append((image, media))
    return made


def export(
    format: str,
    root: Path,
    items: list[tuple[ExportImage, bytes]],
    options: ExportOptions = OPTIONS,
) -> FolderSink:
    sink = FolderSink(root)
    writer = writer_for(format, sink, options)
    for image, media in items:
        writer.add(image, media if options.include_media else None)
    writer.finish()
    return sink


def test_registry_names_the_formats_and_refuses_others(tmp_path: Path) -> None:
    assert set(WRITERS) == {"metalake_json", "coco", "yolo", "voc", "label_studio", "annotated"}
    assert isinstance(writer_for("metalake", FolderSink(tmp_path), OPTIONS), MetalakeJsonWriter)
    with pytest.raises(UnknownExportFormat) as caught:
        writer_for("tfrecord", FolderSink(tmp_path), OPTIONS)
    assert caught.value.status_code == 400
    assert "'tfrecord'" in caught.value.message
    assert "annotated, coco, label_studio, metalake_json, voc, yolo" in caught.value.message


def test_label_outside_the_label_list_is_a_clear_error(tmp_path: Path) -> None:
    image, media = records(1)[0]
    writer = writer_for("coco", FolderSink(tmp_path), ExportOptions(labels=("other",)))
    with pytest.raises(ExportNotPossible) as caught:
        writer.add(image, media)
    assert caught.value.status_code == 400
    assert repr(image.annotations[0].label) in caught.value.message


# -- COCO -----------------------------------------------------------------------------------------
def load_coco(path: Path) -> Any:
    from pycocotools.coco import COCO

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coco = COCO(str(path))
    assert [str(w.message) for w in caught] == []
    return coco


def coco_stats(truth: Path, detections: Path) -> np.ndarray:
    from pycocotools.cocoeval import COCOeval

    evaluation = COCOeval(load_coco(truth), load_coco(detections), iouType="bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return np.asarray(evaluation.stats)


def test_coco_machine_export_scores_ap_one_against_the_human_export(tmp_path: Path) -> None:
    export("coco", tmp_path / "human", records(12))
    export("coco", tmp_path / "machine", records(12, source="machine"))
    document = json.loads((tmp_path / "machine" / "annotations.json").read_text())
    assert [c["name"] for c in document["categories"]] == list(CLASSES)
    assert [c["id"] for c in document["categories"]] == [1, 2, 3]
    first = document["annotations"][0]
    assert (first["segmentation"], first["iscrowd"], first["score"]) == ([], 0, 0.5)
    x1, y1, x2, y2 = scene(0, size=SIZE).shapes[0].box
    assert first["bbox"] == [x1, y1, x2 - x1, y2 - y1]
    assert first["area"] == (x2 - x1) * (y2 - y1)
    assert document["images"][0] == {
        "id": 1,
        "file_name": "set0/img0.jpg",
        "width": SIZE[0],
        "height": SIZE[1],
    }
    assert (tmp_path / "machine" / "images" / "set0" / "img0.jpg").read_bytes() == jpeg(0)

    stats = coco_stats(
        tmp_path / "human" / "annotations.json", tmp_path / "machine" / "annotations.json"
    )
    assert stats[0] == pytest.approx(1.0)  # AP@[.5:.95]


def test_coco_shifted_boxes_score_the_expected_lower_ap(tmp_path: Path) -> None:
    # Shifting a box right by d of its width gives IoU (1 - d) / (1 + d) with its truth:
    # d = 0.16 -> IoU 0.724, matched at IoU thresholds 0.50..0.70 (5 of 10) only.
    export("coco", tmp_path / "human", records(12))
    export("coco", tmp_path / "machine", records(12, source="machine", shift=0.16))
    stats = coco_stats(
        tmp_path / "human" / "annotations.json", tmp_path / "machine" / "annotations.json"
    )
    assert stats[0] == pytest.approx(0.5, abs=1e-6)  # AP@[.5:.95]
    assert stats[1] == pytest.approx(1.0)  # AP@.5
    assert stats[2] == pytest.approx(0.0)  # AP@.75


def test_coco_polygon_masks_have_the_drawn_area(tmp_path: Path) -> None:
    export("coco", tmp_path, records(6, shape="polygon"))
    coco = load_coco(tmp_path / "annotations.json")
    checked = 0
    for i in range(6):
        truth = scene(i, size=SIZE)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        assert [a["category_id"] for a in anns] == [
            CLASSES.index(s.label) + 1 for s in truth.shapes
        ]
        for ann, shape in zip(anns, truth.shapes, strict=True):
            mask = coco.annToMask(ann).astype(bool)
            drawn = polygon_mask(shape.polygon, SIZE)
            assert mask.shape == (SIZE[1], SIZE[0])
            # pycocotools fills the polygon's (shoelace) area; PIL also paints the outline, so
            # the drawn mask is a pixel wider (IoU 0.87 for the smallest triangle).
            assert mask.sum() == pytest.approx(ann["area"], rel=0.02)
            assert (mask & drawn).sum() / (mask | drawn).sum() > 0.85
            checked += 1
    assert checked >= 6


def test_coco_splits_get_a_document_and_an_image_folder_each(tmp_path: Path) -> None:
    items = records(6, splits=("train", "validation", "test"))
    sink = export("coco", tmp_path, items)
    assert sorted(p for p in sink.written if p.endswith(".json")) == [
        "annotations/test.json",
        "annotations/train.json",
        "annotations/validation.json",
    ]
    for split in ("train", "validation", "test"):
        coco = load_coco(tmp_path / "annotations" / f"{split}.json")
        ids = sorted(coco.getImgIds())
        assert ids == [image.file_id for image, _ in items if image.split == split]
        for image_id in ids:
            name = coco.loadImgs([image_id])[0]["file_name"]
            assert (tmp_path / "images" / split / name).is_file()


def test_coco_keeps_a_proposal_status(tmp_path: Path) -> None:
    image, media = records(1, source="machine")[0]
    proposed = replace(image, annotations=(replace(image.annotations[0], status="proposed"),))
    export("coco", tmp_path, [(proposed, media)])
    ann = json.loads((tmp_path / "annotations.json").read_text())["annotations"][0]
    assert ann["attributes"] == {"status": "proposed"}


# -- YOLO -----------------------------------------------------------------------------------------
YOLO_CHILD = textwrap.dedent(
    """
    import json, sys

    network = []
    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
            network.append(f"{event} {args[:2]!r}")
    sys.addaudithook(audit)

    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    data_yaml, task = sys.argv[1], sys.argv[2]
    data = check_det_dataset(data_yaml, autodownload=False)
    model = YOLO("yolov8n-seg.yaml" if task == "segment" else "yolov8n.yaml")
    model.train(
        data=data_yaml, epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
        val=False, amp=False, project=sys.argv[3], name="run", exist_ok=True, verbose=False,
    )
    print(json.dumps({
        "train": data["train"], "val": data["val"], "names": data["names"], "nc": data["nc"],
        "epochs_done": model.trainer.epoch + 1, "network": network,
    }))
    """
)


def run_ultralytics(tmp_path: Path, data_yaml: Path, task: str) -> dict[str, Any]:
    """check_det_dataset and one training epoch, in a child process (ultralytics' global state
    stays out of the tests) that records any attempt to reach the network."""
    config = tmp_path / "ultralytics-config"
    (config / "Ultralytics").mkdir(parents=True)
    import matplotlib

    font = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    shutil.copy(font, config / "Ultralytics" / "Arial.ttf")  # the font it would fetch
    done = subprocess.run(
        [sys.executable, "-c", YOLO_CHILD, str(data_yaml), task, str(tmp_path / "runs")],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "YOLO_OFFLINE": "1",
            "YOLO_CONFIG_DIR": str(config),
            "OMP_NUM_THREADS": "1",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def denormalise_boxes(text: str) -> list[tuple[int, list[float]]]:
    boxes = []
    for line in text.splitlines():
        cls, cx, cy, w, h = line.split()
        x, y, bw, bh = (
            float(cx) * SIZE[0],
            float(cy) * SIZE[1],
            float(w) * SIZE[0],
            float(h) * SIZE[1],
        )
        boxes.append((int(cls), [x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2]))
    return boxes


@pytest.mark.timeout(900)
def test_yolo_detect_export_is_accepted_and_trains(tmp_path: Path) -> None:
    root = tmp_path / "export"
    export("yolo", root, records(8, splits=("train", "validation")))
    data = yaml.safe_load((root / "data.yaml").read_text())
    assert data == {
        "train": "images/train",
        "val": "images/validation",
        "names": dict(enumerate(CLASSES)),
    }
    for i in range(8):
        split = ("train", "validation")[i % 2]
        label_file = root / "labels" / split / f"set{i % 2}" / f"img{i}.txt"
        assert (root / "images" / split / f"set{i % 2}" / f"img{i}.jpg").is_file()
        truth = scene(i, size=SIZE).shapes
        got = denormalise_boxes(label_file.read_text())
        assert [cls for cls, _ in got] == [s.class_id for s in truth]
        for (_, box), shape in zip(got, truth, strict=True):
            assert np.allclose(box, shape.box, atol=1.0)

    checked = run_ultralytics(tmp_path, root / "data.yaml", "detect")
    assert checked["network"] == []
    assert checked["train"] == str((root / "images" / "train").resolve())
    assert checked["val"] == str((root / "images" / "validation").resolve())
    assert (checked["nc"], checked["epochs_done"]) == (3, 1)


@pytest.mark.timeout(900)
def test_yolo_segment_unsplit_export_is_accepted_and_trains(tmp_path: Path) -> None:
    root = tmp_path / "export"
    items = records(6, shape="polygon")
    # one box among the polygons: written as its 4 corners
    image, media = items[0]
    box = ExportAnnotation(
        id=9999,
        label="square",
        shape="box",
        geometry={"x1": 10, "y1": 20, "x2": 50, "y2": 60},
        confidence=None,
        source="human",
        status="applied",
    )
    items[0] = (replace(image, annotations=(*image.annotations, box)), media)
    export("yolo", root, items, replace(OPTIONS, yolo_task="segment"))
    text = (root / "data.yaml").read_text()
    assert "val names the same set" in text
    assert yaml.safe_load(text)["val"] == "images/train"
    lines = (root / "labels" / "train" / "set0" / "img0.txt").read_text().splitlines()
    corners = [float(v) for v in lines[-1].split()[1:]]
    assert np.allclose(
        [c * SIZE[k % 2] for k, c in enumerate(corners)],
        [10, 20, 50, 20, 50, 60, 10, 60],
        atol=1e-3,
    )
    first = scene(0, size=SIZE).shapes[0]
    values = [float(v) for v in lines[0].split()[1:]]
    points = [(values[k] * SIZE[0], values[k + 1] * SIZE[1]) for k in range(0, len(values), 2)]
    assert np.allclose(points, first.polygon, atol=1.0)

    checked = run_ultralytics(tmp_path, root / "data.yaml", "segment")
    assert checked["network"] == []
    assert checked["train"] == checked["val"] == str((root / "images" / "train").resolve())
    assert checked["epochs_done"] == 1


# -- VOC ------------------------------------------------------------------------------------------
def test_voc_export_loads_as_a_torchvision_voc_dataset(tmp_path: Path) -> None:
    from torchvision.datasets import VOCDetection

    year = tmp_path / "VOCdevkit" / "VOC2012"
    items = records(6, source="machine", splits=("train", "validation", None))
    export("voc", year, items)
    assert (year / "ImageSets" / "Main" / "train.txt").read_text().splitlines() == [
        "set0/img0",
        "set0/img2",
        "set1/img3",
        "set1/img5",
    ]
    assert (year / "ImageSets" / "Main" / "val.txt").read_text().splitlines() == [
        "set1/img1",
        "set0/img4",
    ]
    dataset = VOCDetection(str(tmp_path), year="2012", image_set="trainval", download=False)
    assert len(dataset) == 6
    by_name = {}
    for index in range(len(dataset)):
        picture, target = dataset[index]
        assert picture.size == SIZE
        by_name[target["annotation"]["filename"]] = target["annotation"]
    for i in range(6):
        parsed = by_name[f"img{i}.jpg"]
        assert parsed["size"] == {"width": str(SIZE[0]), "height": str(SIZE[1]), "depth": "3"}
        truth = scene(i, size=SIZE).shapes
        objects = parsed["object"]
        assert [o["name"] for o in objects] == [s.label for s in truth]
        assert all(o["difficult"] == "0" and o["truncated"] == "0" for o in objects)
        for o, s, k in zip(objects, truth, range(len(truth)), strict=True):
            box = [float(o["bndbox"][key]) for key in ("xmin", "ymin", "xmax", "ymax")]
            assert box == list(s.box)
            assert float(o["score"]) == pytest.approx(0.5 + 0.1 * k)


def test_voc_polygon_is_written_as_its_box(tmp_path: Path) -> None:
    from torchvision.datasets import VOCDetection

    export("voc", tmp_path / "VOCdevkit" / "VOC2007", records(2, shape="polygon"))
    dataset = VOCDetection(str(tmp_path), year="2007", image_set="train", download=False)
    _, target = dataset[0]
    truth = scene(0, size=SIZE).shapes[0]
    o = target["annotation"]["object"][0]
    xs, ys = [p[0] for p in truth.polygon], [p[1] for p in truth.polygon]
    box = [float(o["bndbox"][key]) for key in ("xmin", "ymin", "xmax", "ymax")]
    assert np.allclose(box, [min(xs), min(ys), max(xs), max(ys)], atol=1e-3)


# -- Label Studio ---------------------------------------------------------------------------------
def test_label_studio_results_are_percent_of_the_original_size() -> None:
    box = ExportAnnotation(
        id=1,
        label="square",
        shape="box",
        geometry={"x1": 20, "y1": 30, "x2": 120, "y2": 90},
        confidence=0.8,
        source="machine",
        status="proposed",
    )
    polygon = ExportAnnotation(
        id=2,
        label="triangle",
        shape="polygon",
        geometry={"points": [[0, 0], [200, 0], [100, 150]]},
        confidence=None,
        source="human",
        status="applied",
    )
    keypoints = replace(box, id=3, shape="keypoints", geometry={"points": [[1, 1, 2]]})
    got = results_for(
        [box, polygon, keypoints], width=200, height=150, from_name="tool", to_name="pic"
    )
    assert got == [
        {
            "id": "metalake-1",
            "from_name": "tool",
            "to_name": "pic",
            "type": "rectanglelabels",
            "original_width": 200,
            "original_height": 150,
            "image_rotation": 0,
            "value": {
                "x": 10.0,
                "y": 20.0,
                "width": 50.0,
                "height": 40.0,
                "rotation": 0,
                "rectanglelabels": ["square"],
            },
            "score": 0.8,
            "meta": {"text": ["proposed"]},
        },
        {
            "id": "metalake-2",
            "from_name": "tool_polygon",
            "to_name": "pic",
            "type": "polygonlabels",
            "original_width": 200,
            "original_height": 150,
            "image_rotation": 0,
            "value": {
                "points": [[0.0, 0.0], [100.0, 0.0], [50.0, 100.0]],
                "closed": True,
                "polygonlabels": ["triangle"],
            },
        },
    ]
    with pytest.raises(ExportNotPossible):
        results_for([box], width=0, height=150)


def test_label_studio_config_names_every_control() -> None:
    import xml.etree.ElementTree as ET

    config = ET.fromstring(label_config(["a & b", 'say "hi"'], polygons=True, tags=True))
    assert [(c.tag, c.get("name"), c.get("toName")) for c in config] == [
        ("Image", "image", None),
        ("RectangleLabels", "label", "image"),
        ("PolygonLabels", "label_polygon", "image"),
        ("Choices", "label_tags", "image"),
    ]
    assert config[0].get("value") == "$image"
    assert [label.get("value") for label in config[1]] == ["a & b", 'say "hi"']
    plain = ET.fromstring(label_config(["x"], polygons=False))
    assert [c.tag for c in plain] == ["Image", "RectangleLabels"]
    with pytest.raises(ExportNotPossible):
        label_config([], polygons=False)


def test_label_studio_tasks_split_human_and_machine(tmp_path: Path) -> None:
    human = records(2)
    machine = records(2, source="machine", shape="polygon")
    items = [
        (replace(h, annotations=h.annotations + m.annotations), media)
        for (h, media), (m, _) in zip(human, machine, strict=True)
    ]
    sink = FolderSink(tmp_path)
    writer = LabelStudioWriter(sink, OPTIONS, image_url=lambda image: f"https://x/{image.file_id}")
    for image, media in items:
        writer.add(image, media)
    writer.finish()
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert len(tasks) == 2
    for i, task in enumerate(tasks):
        truth = scene(i, size=SIZE).shapes
        assert task["data"] == {
            "image": f"https://x/{i + 1}",
            "metalake_path": f"set{i % 2}/img{i}.jpg",
        }
        (annotation,) = task["annotations"]
        rectangles = annotation["result"]
        assert [r["value"]["rectanglelabels"] for r in rectangles] == [[s.label] for s in truth]
        for r, s in zip(rectangles, truth, strict=True):
            x1, y1, x2, y2 = s.box
            v = r["value"]
            assert (r["original_width"], r["original_height"]) == SIZE
            assert v["x"] * SIZE[0] / 100 == pytest.approx(x1)
            assert v["y"] * SIZE[1] / 100 == pytest.approx(y1)
            assert v["width"] * SIZE[0] / 100 == pytest.approx(x2 - x1)
            assert v["height"] * SIZE[1] / 100 == pytest.approx(y2 - y1)
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "metalake-7"
        assert [r["type"] for r in prediction["result"]] == ["polygonlabels"] * len(truth)
        scores = [0.5 + 0.1 * k for k in range(len(truth))]
        assert prediction["score"] == pytest.approx(sum(scores) / len(scores))
        points = prediction["result"][0]["value"]["points"]
        assert np.allclose(
            [[x * SIZE[0] / 100, y * SIZE[1] / 100] for x, y in points], truth[0].polygon
        )
    assert (tmp_path / "images" / "set0" / "img0.jpg").read_bytes() == jpeg(0)
    config = (tmp_path / "label_config.xml").read_text()
    assert "<PolygonLabels" in config
    assert "<Choices" not in config


def test_unknown_size_is_read_from_the_media_or_refused(tmp_path: Path) -> None:
    image, media = records(1)[0]
    unsized = replace(image, width=None, height=None)
    export("yolo", tmp_path / "a", [(unsized, media)])
    got = denormalise_boxes((tmp_path / "a" / "labels" / "train" / "set0" / "img0.txt").read_text())
    assert np.allclose(got[0][1], scene(0, size=SIZE).shapes[0].box, atol=1.0)
    with pytest.raises(ExportNotPossible) as caught:
        export("yolo", tmp_path / "b", [(unsized, media)], replace(OPTIONS, include_media=False))
    assert "shapes_set0_img0.jpg" in caught.value.message


@pytest.mark.parametrize(
    ("format", "written"),
    [("yolo", "labels/train/set0/img0.txt"), ("voc", "Annotations/set0/img0.xml")],
)
def test_same_stem_in_one_folder_is_refused_by_name(
    tmp_path: Path, format: str, written: str
) -> None:
    image, media = records(1)[0]
    twin = replace(image, file_id=99, unique_name="shapes_set0_img0.png", path="set0/img0.png")
    with pytest.raises(ExportNotPossible) as caught:
        export(format, tmp_path, [(image, media), (twin, media)])
    assert caught.value.status_code == 400
    assert "'shapes_set0_img0.jpg' and 'shapes_set0_img0.png'" in caught.value.message
    assert repr(written) in caught.value.message


@pytest.mark.parametrize("format", sorted(IMAGE_ONLY))
def test_image_formats_refuse_videos_by_name(tmp_path: Path, format: str) -> None:
    image, _ = records(1)[0]
    video = replace(image, unique_name="clips_a.mp4", path="a.mp4", content_type="video")
    with pytest.raises(ExportNotPossible) as caught:
        export(format, tmp_path, [(video, b"")])
    assert "'clips_a.mp4' is a video" in caught.value.message
    assert "metalake_json" in caught.value.message


def test_metalake_json_keeps_videos_with_their_frames(tmp_path: Path) -> None:
    image, _ = records(1)[0]
    framed = replace(image.annotations[0], frame_index=12)
    video = replace(image, path="a.mp4", content_type="video", annotations=(framed,))
    export("metalake_json", tmp_path, [(video, b"mp4")])
    (entry,) = json.loads((tmp_path / "annotations.json").read_text())["images"]
    assert entry["image"] == "a.mp4"
    assert entry["annotations"][0]["frame_index"] == 12
    assert (tmp_path / "images" / "a.mp4").read_bytes() == b"mp4"


def test_an_empty_selection_writes_empty_documents(tmp_path: Path) -> None:
    for format in sorted(WRITERS):
        export(format, tmp_path / format, [])
    coco = load_coco(tmp_path / "coco" / "annotations.json")
    assert (coco.getImgIds(), [c["name"] for c in coco.loadCats(coco.getCatIds())]) == (
        [],
        list(CLASSES),
    )
    assert json.loads((tmp_path / "label_studio" / "tasks.json").read_text()) == []
    assert json.loads((tmp_path / "metalake_json" / "annotations.json").read_text()) == {
        "images": []
    }
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["names"] == dict(
        enumerate(CLASSES)
    )
