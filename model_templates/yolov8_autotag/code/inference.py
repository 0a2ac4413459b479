"""MetaLake autotagging bundle: an ultralytics YOLO detector (or segmentation model).

The model host calls `model_fn(model_dir)` once, then `predict_fn((images, parameters), model)`
per request: it decodes the request for you (images uint8 (N, H, W, 3) RGB, all of one size;
the job's parameters) and answers with the JSON of what predict_fn returns, as a SageMaker
container's default input_fn and output_fn do. The answer is a list with one entry per image:
`{"boxes": [[x1, y1, x2, y2, conf, cls], ...], "masks": null | [[[x, y], ...], ...],
"probs": null}` in the pixel space of the image received. `cls` indexes label_list.yaml.

To use your own YOLO weights: put them at the bundle root, list your class names in
label_list.yaml in training order, and nothing here needs to change.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

DEFAULT_WEIGHTS = "yolov8n.pt"  # overridden by `weights:` in the bundle's metalake.yaml
WEIGHT_SUFFIXES = (".pt",)
DEFAULT_CONFIDENCE = 0.25
STRIDE = 32  # YOLO input sides must be multiples of the largest stride


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


def predict_fn(input_data: tuple[np.ndarray, dict[str, Any]],
               model: Detector) -> list[dict[str, Any]]:
    """Detect in every image at the size it arrived in (rounded up to a multiple of 32)."""
    images, parameters = input_data
    if len(images) == 0:
        return []
    confidence = float(parameters.get("confidence_threshold", DEFAULT_CONFIDENCE))
    imgsz = [math.ceil(side / STRIDE) * STRIDE for side in images.shape[1:3]]
    # ultralytics reads numpy images as BGR (OpenCV's order); the request is RGB.
    bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
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
