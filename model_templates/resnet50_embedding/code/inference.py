"""MetaLake embedding bundle: torchvision ResNet50, 2048-d pooled features.

The model host calls `model_fn(model_dir)` once, then `predict_fn((images, parameters), model)`
per request: it decodes the request for you (images uint8 (N, H, W, 3) RGB, all of one size;
the job's parameters) and answers with the JSON of what predict_fn returns, as a SageMaker
container's default input_fn and output_fn do. The answer is a list with one
`{"embedding": [2048 floats]}` per image.

Preprocessing is ImageNet's: RGB scaled to [0, 1], normalised with the ImageNet mean and
standard deviation. The engine sends 224x224 images by default (the job's input_resolution);
an image of any other size is resized (not cropped) to 224x224 first, because the engine has
already chosen the framing.

To embed with your own network: change `build_network` and `preprocess`, and set
`embedding_dim` in metalake.yaml to its output size.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torchvision.models import ResNet50_Weights, resnet50

DEFAULT_WEIGHTS = "resnet50-11ad3fa6.pth"  # torchvision's IMAGENET1K_V2 file; see metalake.yaml
WEIGHT_SUFFIXES = (".pth", ".pt")
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def preprocess(images: np.ndarray, device: torch.device) -> torch.Tensor:
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


def predict_fn(input_data: tuple[np.ndarray, dict[str, Any]],
               model: Embedder) -> list[dict[str, Any]]:
    images, _ = input_data
    if len(images) == 0:
        return []
    with torch.inference_mode():
        features = model.network(preprocess(images, model.device))
    return [{"embedding": row} for row in features.float().cpu().tolist()]
