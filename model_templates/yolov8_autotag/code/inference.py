"""MetaLake autotagging bundle: an ultralytics YOLO detector (or segmentation model).

The model host calls these four functions, as a SageMaker inference container does:

    model = model_fn(model_dir)                                   # once, at start
    batch = input_fn(request_body, request_content_type)          # per request
    prediction = predict_fn(batch, model)
    body = output_fn(prediction, accept)                          # the response body

A request carries a batch of images (see README.md for the two request formats); the
response is a JSON list with one entry per image:
`{"boxes": [[x1, y1, x2, y2, conf, cls], ...], "masks": null | [[[x, y], ...], ...],
"probs": null}` in the pixel space of the image received. `cls` indexes label_list.yaml.

To use your own YOLO weights: put them at the bundle root, list your class names in
label_list.yaml in training order, and nothing here needs to change.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

DEFAULT_WEIGHTS = "yolov8n.pt"  # overridden by `weights:` in the bundle's metalake.yaml
WEIGHT_SUFFIXES = (".pt",)
DEFAULT_CONFIDENCE = 0.25
STRIDE = 32  # YOLO input sides must be multiples of the largest stride


# --- request decoding (the same in every template) ----------------------------------------


@dataclass
class Batch:
    """What input_fn hands to predict_fn."""

    images: list[np.ndarray]  # uint8 (H, W, 3), RGB
    parameters: dict[str, Any]


def input_fn(request_body: bytes | str, request_content_type: str) -> Batch:
    """Decode `application/x-npz` (arrays) or `application/json` (base64 image files)."""
    kind = (request_content_type or "").split(";")[0].strip().lower()
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    if kind == "application/x-npz":
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise ValueError("the npz request has no `images` array")
            images = archive["images"]
            parameters = (json.loads(str(archive["parameters"][()]))
                          if "parameters" in archive.files else {})
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError("`images` must be uint8 with shape (N, H, W, 3), got "
                             f"{images.dtype} {images.shape}")
        return Batch(list(images), dict(parameters))
    if kind == "application/json":
        payload = json.loads(body)
        encoded = payload.get("images")
        if not isinstance(encoded, list):
            raise ValueError("the JSON request needs `images`: a list of base64 image files")
        decoded = [_decode_image(item) for item in encoded]
        return Batch(decoded, dict(payload.get("parameters") or {}))
    raise ValueError(f"unsupported content type {request_content_type!r}: send "
                     "application/x-npz or application/json")


def _decode_image(encoded: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def output_fn(prediction_output: list[dict[str, Any]], content_type: str) -> str:
    """The prediction as a JSON string (the only format this bundle answers in)."""
    accepted = {part.split(";")[0].strip().lower() for part in (content_type or "*/*").split(",")}
    if not accepted & {"application/json", "application/*", "*/*"}:
        raise ValueError(f"unsupported accept type {content_type!r}: use application/json")
    return json.dumps(prediction_output)


# --- weights --------------------------------------------------------------------------------


def bundle_settings(model_dir: Path) -> dict[str, Any]:
    """The bundle's optional root `metalake.yaml` (e.g. `weights: yolov8n.pt`)."""
    path = model_dir / "metalake.yaml"
    return dict(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def find_weights(model_dir: Path, name: str, suffixes: tuple[str, ...]) -> Path | None:
    """`name` (or the only weights file) at the bundle root or in weights/, else
    `$METALAKE_WEIGHTS_DIR/name`; None when neither has it."""
    found = [path for folder in (model_dir, model_dir / "weights") if folder.is_dir()
             for path in sorted(folder.iterdir())
             if path.is_file() and path.suffix.lower() in suffixes]
    for path in found:
        if path.name == name:
            return path
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"several weight files in the bundle ({', '.join(p.name for p in found)});"
                         " name the one to load with `weights:` in metalake.yaml")
    shared = os.environ.get("METALAKE_WEIGHTS_DIR")
    if shared and (Path(shared) / name).is_file():
        return Path(shared) / name
    return None


def network_allowed(host: str = "github.com") -> bool:
    """False when YOLO_OFFLINE / METALAKE_OFFLINE is set or `host` is unreachable in 3 s."""
    for flag in ("YOLO_OFFLINE", "METALAKE_OFFLINE"):
        if os.environ.get(flag, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def missing_weights(name: str, model_dir: Path) -> FileNotFoundError:
    shared = os.environ.get("METALAKE_WEIGHTS_DIR") or "unset"
    return FileNotFoundError(
        f"weights not found: put {name} in $METALAKE_WEIGHTS_DIR (now {shared}) or in the bundle "
        f"({model_dir} or {model_dir / 'weights'}); there is no network to download it")


# --- the model ------------------------------------------------------------------------------


@dataclass
class Detector:
    model: Any  # ultralytics.YOLO
    labels: list[str]
    device: str


def model_fn(model_dir: str) -> Detector:
    """Load the YOLO weights of the bundle in `model_dir` and check them against label_list.yaml."""
    import torch
    from ultralytics import YOLO

    root = Path(model_dir)
    name = str(bundle_settings(root).get("weights", DEFAULT_WEIGHTS))
    weights = find_weights(root, name, WEIGHT_SUFFIXES)
    if weights is None:
        if not network_allowed():
            raise missing_weights(name, root)
        # ultralytics downloads its own release assets; into METALAKE_WEIGHTS_DIR when set.
        shared = os.environ.get("METALAKE_WEIGHTS_DIR")
        weights = Path(shared) / name if shared else Path(name)
    model = YOLO(str(weights))
    labels = [str(label) for label in yaml.safe_load((root / "label_list.yaml").read_text())]
    if len(labels) != len(model.names):
        raise ValueError(f"label_list.yaml lists {len(labels)} names but {Path(weights).name} "
                         f"predicts {len(model.names)} classes")
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    return Detector(model, labels, device)


def predict_fn(input_data: Batch, model: Detector) -> list[dict[str, Any]]:
    """Detect in every image at the size it arrived in (rounded up to a multiple of 32)."""
    if not input_data.images:
        return []
    confidence = float(input_data.parameters.get("confidence_threshold", DEFAULT_CONFIDENCE))
    height = max(image.shape[0] for image in input_data.images)
    width = max(image.shape[1] for image in input_data.images)
    imgsz = [math.ceil(side / STRIDE) * STRIDE for side in (height, width)]
    # ultralytics reads numpy images as BGR (OpenCV's order); the request is RGB.
    bgr = [np.ascontiguousarray(image[..., ::-1]) for image in input_data.images]
    results = model.model.predict(bgr, imgsz=imgsz, conf=confidence, device=model.device,
                                  verbose=False)
    segments = model.model.task == "segment"
    return [
        {"boxes": result.boxes.data.cpu().tolist(), "masks": polygons(result, segments),
         "probs": None}
        for result in results
    ]


def polygons(result: Any, segments: bool) -> list[list[list[float]]] | None:
    """One outline per box (pixel [x, y] points); None for a model that makes no masks."""
    if not segments:
        return None
    if result.masks is None:  # a segmentation model that found nothing
        return []
    return [outline.tolist() for outline in result.masks.xy]
