"""MetaLake embedding bundle: torchvision ResNet50, 2048-d pooled features.

The model host calls these four functions, as a SageMaker inference container does:

    model = model_fn(model_dir)                                   # once, at start
    batch = input_fn(request_body, request_content_type)          # per request
    prediction = predict_fn(batch, model)
    body = output_fn(prediction, accept)                          # the response body

A request carries a batch of images (see README.md for the two request formats); the
response is a JSON list with one `{"embedding": [2048 floats]}` per image.

Preprocessing is ImageNet's: RGB scaled to [0, 1], normalised with the ImageNet mean and
standard deviation. The engine sends 224x224 images by default (the job's input_resolution);
an image of any other size is resized (not cropped) to 224x224 first, because the engine has
already chosen the framing.

To embed with your own network: change `build_network` and `preprocess`, and set
`embedding_dim` in metalake.yaml to its output size.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image
from torchvision.models import ResNet50_Weights, resnet50

DEFAULT_WEIGHTS = "resnet50-11ad3fa6.pth"  # torchvision's IMAGENET1K_V2 file; see metalake.yaml
WEIGHT_SUFFIXES = (".pth", ".pt")
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
class Embedder:
    network: torch.nn.Module
    device: torch.device


def build_network(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """ResNet50 whose classifier is replaced by the identity: it returns the 2048-d average-
    pooled features. `state_dict` may include the 1000-class `fc` layer or not."""
    network: torch.nn.Module = resnet50(weights=None)
    if "fc.weight" not in state_dict:
        network.fc = torch.nn.Identity()
    network.load_state_dict(state_dict)
    network.fc = torch.nn.Identity()
    network.eval()
    return network


def model_fn(model_dir: str) -> Embedder:
    """Load ResNet50 weights: the bundle's, else $METALAKE_WEIGHTS_DIR's, else torch's own
    download cache, else torchvision's download where a network exists."""
    root = Path(model_dir)
    name = str(bundle_settings(root).get("weights", DEFAULT_WEIGHTS))
    weights = find_weights(root, name, WEIGHT_SUFFIXES)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if weights is None and cached.is_file():
        weights = cached
    published = torchvision_weights(name)
    if weights is not None:
        state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    elif published is not None and network_allowed("download.pytorch.org"):
        state_dict = published.get_state_dict(progress=False)  # lands in torch's cache
    else:
        raise missing_weights(name, root)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return Embedder(build_network(state_dict).to(device), device)


def torchvision_weights(name: str) -> ResNet50_Weights | None:
    """The torchvision weights published as file `name`, if any."""
    return next((w for w in ResNet50_Weights if w.url.rsplit("/", 1)[-1] == name), None)


def preprocess(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 RGB (H, W, 3) images -> a normalised float (N, 3, 224, 224) batch."""
    tensors = []
    for image in images:
        tensor = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
        if tuple(tensor.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            tensor = torch.nn.functional.interpolate(
                tensor, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                align_corners=False)
        tensors.append(tensor)
    batch = torch.cat(tensors).to(device) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (batch - mean) / std


def predict_fn(input_data: Batch, model: Embedder) -> list[dict[str, Any]]:
    if not input_data.images:
        return []
    with torch.inference_mode():
        features = model.network(preprocess(input_data.images, model.device))
    return [{"embedding": row} for row in features.float().cpu().tolist()]
