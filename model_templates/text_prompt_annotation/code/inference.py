"""MetaLake auto-annotation bundle: text prompt -> boxes (YOLO-World) -> masks (SAM).

The model host calls `model_fn(model_dir)` once, then `predict_fn((images, parameters), model)`
per request: it decodes the request for you (images uint8 (N, H, W, 3) RGB, all of one size;
the job's parameters) and answers with the JSON of what predict_fn returns, as a SageMaker
container's default input_fn and output_fn do. The parameters carry the prompt: a list of
`{"label", "description"}` (see README.md). The descriptions become YOLO-World's vocabulary
(its CLIP text encoder embeds them); each box found is handed to SAM as a box prompt, and
SAM's mask becomes a polygon. The response is a JSON list with one entry per image:
`{"boxes": [[x1, y1, x2, y2], ...], "masks": null | [[[x, y], ...], ...],
"logits": [conf, ...], "phrases": [description, ...]}`, in the pixel space of the image
received; `phrases[i]` is the prompt description box `i` matched.

Three weight files (names in metalake.yaml): the YOLO-World detector, the CLIP ViT-B/32 text
encoder it was trained with, and a SAM checkpoint (`segmenter: null` there gives boxes only).
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

DEFAULT_WEIGHTS = {
    "weights": "yolov8s-worldv2.pt",  # ultralytics YOLO-World v2 (open-vocabulary detector)
    "text_encoder": "ViT-B-32.pt",  # OpenAI CLIP ViT-B/32, YOLO-World's text side
    "segmenter": "mobile_sam.pt",  # any ultralytics SAM checkpoint: sam_b.pt, sam2_b.pt, ...
}
DOWNLOAD_NAMES = {"text_encoder": "ViT-B/32"}  # what the library calls it when downloading
DEFAULT_CONFIDENCE = 0.25
MAX_DETECTIONS = 100
STRIDE = 32


# --- weights --------------------------------------------------------------------------------


def bundle_settings(model_dir: Path) -> dict[str, Any]:
    """The bundle's optional root `metalake.yaml`."""
    path = model_dir / "metalake.yaml"
    return dict(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def weight_names(settings: dict[str, Any]) -> dict[str, str | None]:
    """File name per role: `weights:` (the detector) and `extra_weights:` (the rest)."""
    names: dict[str, str | None] = dict(DEFAULT_WEIGHTS)
    if "weights" in settings:
        names["weights"] = settings["weights"]
    names.update(settings.get("extra_weights") or {})
    return names


def locate(model_dir: Path, name: str) -> Path | None:
    """`name` at the bundle root, in weights/, or in $METALAKE_WEIGHTS_DIR."""
    folders = [model_dir, model_dir / "weights"]
    if os.environ.get("METALAKE_WEIGHTS_DIR"):
        folders.append(Path(os.environ["METALAKE_WEIGHTS_DIR"]))
    return next((folder / name for folder in folders if (folder / name).is_file()), None)


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


def resolve(model_dir: Path, role: str, name: str, online: bool) -> str:
    """A local path for `name`, else the name the library downloads it by (when online)."""
    found = locate(model_dir, name)
    if found is not None:
        return str(found)
    if online:
        return DOWNLOAD_NAMES.get(role, name)
    raise missing_weights(name, model_dir)


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    label: str
    description: str


@dataclass
class Annotator:
    detector: Any  # ultralytics.YOLOWorld, its CLIP text encoder attached
    segmenter: Any | None  # ultralytics.SAM, or None for boxes only
    default_prompt: list[Prompt]
    device: str
    vocabulary: tuple[str, ...] = field(default=())


def model_fn(model_dir: str) -> Annotator:
    """Load the detector, its text encoder and SAM; the default prompt is label_list.yaml."""
    root = Path(model_dir)
    names = {role: str(name) for role, name in weight_names(bundle_settings(root)).items()
             if name}
    missing = [name for name in names.values() if locate(root, name) is None]
    online = bool(missing) and network_allowed()  # probe the network only when it matters
    paths = {role: resolve(root, role, name, online) for role, name in names.items()}
    if importlib.util.find_spec("clip") is None:
        raise ModuleNotFoundError(
            "YOLO-World's text encoder needs the `clip` package: pip install openai-clip "
            "'setuptools<81' (see code/requirements.txt)")
    import torch
    from ultralytics import SAM, YOLOWorld
    from ultralytics.nn.text_model import CLIP

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    detector: Any = YOLOWorld(paths["weights"])
    # Keep the text encoder loaded: every new prompt is embedded with it (use_vocabulary).
    detector.model.clip_model = CLIP(paths["text_encoder"], torch.device(device))
    segmenter = SAM(paths["segmenter"]) if "segmenter" in paths else None
    labels = [str(label) for label in yaml.safe_load((root / "label_list.yaml").read_text())]
    return Annotator(detector, segmenter, [Prompt(label, label) for label in labels], device)


def prompts_from(parameters: dict[str, Any], default: list[Prompt]) -> list[Prompt]:
    """The request's prompt (`[{"label", "description"}]`; a plain string is both), its
    duplicate descriptions dropped; the bundle's default when it has none."""
    prompts: list[Prompt] = []
    for item in parameters.get("prompt") or []:
        if isinstance(item, str):
            label, description = item, item
        else:
            label = str(item.get("label") or item.get("description") or "").strip()
            description = str(item.get("description") or label).strip()
        if not label:
            raise ValueError(f"prompt entry {item!r} has neither a label nor a description")
        if all(p.description != description for p in prompts):
            prompts.append(Prompt(label, description))
    return prompts or list(default)


def use_vocabulary(model: Annotator, descriptions: list[str]) -> None:
    """Make `descriptions` the detector's classes (what YOLOWorld.set_classes does, embedding
    them with the text encoder loaded once in model_fn rather than a fresh download)."""
    if tuple(descriptions) == model.vocabulary:
        return
    model.detector.model.set_classes(descriptions, cache_clip_model=True)
    model.detector.model.names = list(descriptions)
    model.detector.predictor = None  # the next predict builds one for the new classes
    model.vocabulary = tuple(descriptions)


def predict_fn(input_data: tuple[np.ndarray, dict[str, Any]],
               model: Annotator) -> list[dict[str, Any]]:
    images, parameters = input_data
    if len(images) == 0:
        return []
    prompts = prompts_from(parameters, model.default_prompt)
    use_vocabulary(model, [p.description for p in prompts])
    confidence = float(parameters.get("confidence_threshold", DEFAULT_CONFIDENCE))
    imgsz = [math.ceil(side / STRIDE) * STRIDE for side in images.shape[1:3]]
    # ultralytics reads numpy images as BGR (OpenCV's order); the request is RGB.
    bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
    results = model.detector.predict(bgr, imgsz=imgsz, conf=confidence, max_det=MAX_DETECTIONS,
                                     device=model.device, verbose=False)
    answers = []
    for image, result in zip(bgr, results, strict=True):
        boxes = result.boxes.xyxy.cpu().tolist()
        answers.append({
            "boxes": boxes,
            "masks": segment(model, image, boxes),
            "logits": result.boxes.conf.cpu().tolist(),
            "phrases": [prompts[int(c)].description for c in result.boxes.cls.tolist()],
        })
    return answers


def segment(model: Annotator, image: np.ndarray, boxes: list[list[float]]) -> \
        list[list[list[float]]] | None:
    """One SAM polygon per box, in box order ([] for a box SAM gave no mask)."""
    if model.segmenter is None:
        return None
    if not boxes:
        return []
    result = model.segmenter.predict(image, bboxes=boxes, conf=0.0, device=model.device,
                                     verbose=False)[0]
    return per_prompt_polygons(result, len(boxes))


def per_prompt_polygons(result: Any, count: int) -> list[list[list[float]]]:
    """SAM's masks as polygons in prompt order: SAM's `cls` column is the prompt index, and a
    mask it scored too low is missing, so its box gets []."""
    if result.masks is None:
        return [[] for _ in range(count)]
    by_prompt = {int(c): outline.tolist()
                 for c, outline in zip(result.boxes.cls.tolist(), result.masks.xy, strict=True)}
    return [by_prompt.get(index, []) for index in range(count)]
