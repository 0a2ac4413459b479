"""model_templates/yolov8_autotag: the template's inference.py, run in-process with YOLOv8n
and YOLOv8n-seg trained on the generated shapes (no downloaded weights)."""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from engine.hosting import serve
from tests.fixtures import payloads
from tests.fixtures.bundles import TEMPLATES, load_inference, run_request
from tests.fixtures.shapes import polygon_mask, scene

TEMPLATE = TEMPLATES / "yolov8_autotag"
VAL_START = 400  # scene indices the models were not trained on (DatasetSpec: 400 train)
# The first use trains a model (minutes); cached runs take seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run(module: ModuleType, model: Any, body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The model host's sequence for one request."""
    return run_request(module, model, body, content_type)


@pytest.fixture(scope="module")
def detector(shapes_detector_bundle: Path) -> tuple[ModuleType, Any]:
    module = load_inference(shapes_detector_bundle)
    return module, module.model_fn(str(shapes_detector_bundle))


@pytest.fixture(scope="module")
def segmenter(shapes_segmenter_bundle: Path) -> tuple[ModuleType, Any]:
    module = load_inference(shapes_segmenter_bundle)
    return module, module.model_fn(str(shapes_segmenter_bundle))


def test_template_layout() -> None:
    labels = yaml.safe_load((TEMPLATE / "label_list.yaml").read_text())
    assert len(labels) == 80 == len(set(labels))
    assert labels[:3] == ["person", "bicycle", "car"]
    assert labels[-1] == "toothbrush"
    assert yaml.safe_load((TEMPLATE / "metalake.yaml").read_text()) == {"weights": "yolov8n.pt"}
    assert (TEMPLATE / "code" / "requirements.txt").is_file()
    module = load_inference(TEMPLATE)
    for hook in ("model_fn", "predict_fn"):
        assert callable(getattr(module, hook))


def test_detects_the_shapes_it_was_trained_on(detector: tuple[ModuleType, Any]) -> None:
    module, model = detector
    items = [scene(index) for index in range(VAL_START, VAL_START + 50)]
    body = payloads.npz_request(
        [s.array() for s in items], payloads.parameters("autotagging", (160, 160), len(items))
    )
    answers = run(module, model, body, payloads.NPZ)
    assert len(answers) == len(items)
    hits = false_pos = missed = 0
    for item, answer in zip(items, answers, strict=True):
        assert answer["masks"] is None
        assert answer["probs"] is None
        assert all(len(row) == 6 and row[4] >= 0.5 for row in answer["boxes"])
        predicted = [(row[:4], int(row[5])) for row in answer["boxes"]]
        truth = [(s.box, s.class_id) for s in item.shapes]
        tp, fp, fn = payloads.match(predicted, truth, threshold=0.5)
        hits, false_pos, missed = hits + tp, false_pos + fp, missed + fn
    precision, recall = hits / (hits + false_pos), hits / (hits + missed)
    print(
        f"shapes detector on 50 val images at conf 0.5, IoU 0.5: "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= 0.9
    assert recall >= 0.9


def test_json_request_gives_the_same_answer_as_npz(detector: tuple[ModuleType, Any]) -> None:
    module, model = detector
    images = [scene(index).array() for index in range(VAL_START, VAL_START + 3)]
    params = payloads.parameters("autotagging", (160, 160), 3)
    from_npz = run(module, model, payloads.npz_request(images, params), payloads.NPZ)
    from_json = run(module, model, payloads.json_request(images, params), payloads.JSON)
    assert from_json == from_npz


def test_boxes_are_in_the_pixels_of_the_received_image(detector: tuple[ModuleType, Any]) -> None:
    """The engine resizes to the job's input_resolution; boxes come back in that space,
    here a non-square size that is no multiple of 32."""
    module, model = detector
    size = (250, 190)
    sx, sy = size[0] / 160, size[1] / 160
    items = [scene(index) for index in range(VAL_START, VAL_START + 10)]
    images = [np.asarray(s.image.resize(size, Image.Resampling.BILINEAR)) for s in items]
    answers = run(
        module,
        model,
        payloads.npz_request(images, payloads.parameters("autotagging", size, len(items))),
        payloads.NPZ,
    )
    hits = total = 0
    for item, answer in zip(items, answers, strict=True):
        truth = [
            ((s.box[0] * sx, s.box[1] * sy, s.box[2] * sx, s.box[3] * sy), s.class_id)
            for s in item.shapes
        ]
        tp, _, _ = payloads.match([(r[:4], int(r[5])) for r in answer["boxes"]], truth)
        hits, total = hits + tp, total + len(truth)
    assert hits / total >= 0.8


def test_confidence_threshold_comes_from_the_request(detector: tuple[ModuleType, Any]) -> None:
    module, model = detector
    images = [scene(index).array() for index in range(VAL_START, VAL_START + 5)]
    loose = run(
        module,
        model,
        payloads.npz_request(
            images, payloads.parameters("autotagging", (160, 160), 5, confidence=0.05)
        ),
        payloads.NPZ,
    )
    strict = run(
        module,
        model,
        payloads.npz_request(
            images, payloads.parameters("autotagging", (160, 160), 5, confidence=0.9)
        ),
        payloads.NPZ,
    )
    assert all(row[4] >= 0.9 for answer in strict for row in answer["boxes"])
    assert sum(map(len, (a["boxes"] for a in loose))) > sum(len(a["boxes"]) for a in strict)


def test_segmenter_returns_a_polygon_per_box(segmenter: tuple[ModuleType, Any]) -> None:
    module, model = segmenter
    items = [scene(index) for index in range(VAL_START, VAL_START + 10)]
    answers = run(
        module,
        model,
        payloads.npz_request(
            [s.array() for s in items], payloads.parameters("autotagging", (160, 160), 10)
        ),
        payloads.NPZ,
    )
    overlaps = []
    for item, answer in zip(items, answers, strict=True):
        assert answer["masks"] is not None
        assert len(answer["masks"]) == len(answer["boxes"])
        for row, polygon in zip(answer["boxes"], answer["masks"], strict=True):
            assert len(polygon) >= 3
            assert all(len(point) == 2 for point in polygon)
            xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
            assert row[0] - 3 <= min(xs)
            assert max(xs) <= row[2] + 3
            assert row[1] - 3 <= min(ys)
            assert max(ys) <= row[3] + 3
            truth = [s for s in item.shapes if s.class_id == int(row[5])]
            if truth:
                mask = polygon_mask([tuple(p) for p in polygon], (160, 160))
                overlaps.append(
                    max(_mask_iou(mask, polygon_mask(s.polygon, (160, 160))) for s in truth)
                )
    assert overlaps
    assert float(np.mean(overlaps)) >= 0.75


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_missing_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("METALAKE_WEIGHTS_DIR", str(tmp_path))
    module = load_inference(TEMPLATE)
    with pytest.raises(FileNotFoundError, match=r"put yolov8n\.pt in \$METALAKE_WEIGHTS_DIR"):
        module.model_fn(str(TEMPLATE))


def test_weights_come_from_metalake_weights_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shapes_detector: Any
) -> None:
    """The template itself (80 COCO labels) finds yolov8n.pt in METALAKE_WEIGHTS_DIR; these
    shapes weights predict 3 classes, which the label check refuses by name."""
    (tmp_path / "yolov8n.pt").write_bytes(shapes_detector.weights.read_bytes())
    monkeypatch.setenv("METALAKE_WEIGHTS_DIR", str(tmp_path))
    module = load_inference(TEMPLATE)
    with pytest.raises(
        ValueError,
        match=r"label_list.yaml lists 80 names but yolov8n.pt "
        r"predicts 3 classes",
    ):
        module.model_fn(str(TEMPLATE))


def test_request_errors_say_what_to_send() -> None:
    hooks = serve.hooks_of(load_inference(TEMPLATE))
    with pytest.raises(ValueError, match=r"send application/x-npz \(or application/json\)"):
        hooks["input_fn"](b"...", "image/png")
    buffer = io.BytesIO()
    np.savez(buffer, images=np.zeros((1, 4, 4, 3), dtype=np.float32), parameters=np.array("{}"))
    with pytest.raises(ValueError, match=r"expected uint8 \(N, H, W, 3\)"):
        hooks["input_fn"](buffer.getvalue(), payloads.NPZ)
    with pytest.raises(ValueError, match="unsupported accept type"):
        hooks["output_fn"]([], "text/csv")
