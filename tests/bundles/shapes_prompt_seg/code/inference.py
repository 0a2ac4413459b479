"""Test auto_annotation bundle: the suite's shapes YOLOv8n-seg answering text prompts.

Not open-vocabulary: a prompt description is matched to the class names it contains
("a circle" -> circle); only prompted classes are returned, and `phrases[i]` is the
description that box `i` matched. Output per image (the auto_annotation contract):
`{"boxes": [[x1, y1, x2, y2], ...], "masks": [[[x, y], ...], ...] | null,
"logits": [conf, ...], "phrases": [description, ...]}` in the received image's pixels.

The weights (the only `.pt` at the bundle root) are copied in by the test.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

IMGSZ = 160  # the size the shapes model was trained at; results come back in input pixels


@dataclass
class Batch:
    images: list[np.ndarray]  # uint8 (H, W, 3) RGB
    parameters: dict[str, Any]


@dataclass
class Segmenter:
    model: Any  # ultralytics.YOLO
    labels: list[str]


def model_fn(model_dir: str) -> Segmenter:
    from ultralytics import YOLO

    root = Path(model_dir)
    weights = sorted(root.glob("*.pt"))
    if len(weights) != 1:
        raise FileNotFoundError(f"expected one .pt file in {root}, found {len(weights)}")
    labels = [str(name) for name in yaml.safe_load((root / "label_list.yaml").read_text())]
    return Segmenter(YOLO(str(weights[0])), labels)


def input_fn(request_body: bytes | str, request_content_type: str) -> Batch:
    kind = (request_content_type or "").split(";")[0].strip().lower()
    if kind != "application/x-npz":
        raise ValueError(
            f"unsupported content type {request_content_type!r}: send application/x-npz"
        )
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    with np.load(io.BytesIO(body), allow_pickle=False) as archive:
        images = archive["images"]
        parameters = (
            json.loads(str(archive["parameters"][()])) if "parameters" in archive.files else {}
        )
    return Batch(list(images), dict(parameters))


def _vocabulary(prompt: list[dict[str, str]], labels: list[str]) -> dict[int, str]:
    """{class id: the prompt description naming it}."""
    wanted: dict[int, str] = {}
    for entry in prompt:
        description = str(entry["description"])
        for class_id, name in enumerate(labels):
            if name.lower() in description.lower():
                wanted.setdefault(class_id, description)
    return wanted


def predict_fn(input_data: Batch, model: Segmenter) -> list[dict[str, Any]]:
    if not input_data.images:
        return []
    params = input_data.parameters
    wanted = _vocabulary(list(params.get("prompt") or []), model.labels)
    confidence = float(params.get("confidence_threshold", 0.25))
    bgr = [np.ascontiguousarray(image[..., ::-1]) for image in input_data.images]
    results = model.model.predict(bgr, imgsz=IMGSZ, conf=confidence, device="cpu", verbose=False)
    out = []
    for result in results:
        boxes, masks, logits, phrases = [], [], [], []
        outlines = result.masks.xy if result.masks is not None else []
        for index, row in enumerate(result.boxes.data.cpu().tolist()):
            x1, y1, x2, y2, conf, cls = row
            if int(cls) not in wanted:
                continue
            boxes.append([x1, y1, x2, y2])
            polygon = outlines[index].tolist() if index < len(outlines) else []
            masks.append(polygon if len(polygon) >= 3 else None)
            logits.append(float(conf))
            phrases.append(wanted[int(cls)])
        out.append({"boxes": boxes, "masks": masks, "logits": logits, "phrases": phrases})
    return out


def output_fn(prediction_output: list[dict[str, Any]], content_type: str) -> str:
    return json.dumps(prediction_output)
