"""model_templates/resnet50_embedding: the template's inference.py, run in-process with a
seeded random-weights ResNet50 (torchvision's own initialisation; nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torchvision.models import resnet50
from torchvision.transforms import v2

from tests.fixtures import payloads
from tests.fixtures.bundles import TEMPLATES, load_inference, run_request
from tests.fixtures.shapes import scene

TEMPLATE = TEMPLATES / "resnet50_embedding"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def embed(
    module: ModuleType, model: Any, images: list[np.ndarray], content_type: str = payloads.NPZ
) -> list[list[float]]:
    size = (images[0].shape[1], images[0].shape[0])
    params = payloads.parameters("embedding", size, len(images))
    body = (
        payloads.npz_request(images, params)
        if content_type == payloads.NPZ
        else payloads.json_request(images, params)
    )
    answer = run_request(module, model, body, content_type)
    return [item["embedding"] for item in answer]


@pytest.fixture(scope="module")
def embedder(resnet50_random_bundle: Path) -> tuple[ModuleType, Any]:
    module = load_inference(resnet50_random_bundle)
    return module, module.model_fn(str(resnet50_random_bundle))


@pytest.fixture(scope="module")
def reference(resnet50_random_weights: Path) -> torch.nn.Module:
    """torchvision's ResNet50 with the same weights, called directly."""
    network = resnet50(weights=None)
    network.load_state_dict(torch.load(resnet50_random_weights, weights_only=True))
    network.fc = torch.nn.Identity()
    return network.eval()


def reference_embeddings(network: torch.nn.Module, images: list[np.ndarray]) -> torch.Tensor:
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize((224, 224), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.Normalize(MEAN, STD),
        ]
    )
    with torch.inference_mode():
        return network(torch.stack([transform(image) for image in images]))


def cosine(a: list[float], b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(torch.tensor(a), b.float(), dim=0))


def test_template_layout() -> None:
    settings = yaml.safe_load((TEMPLATE / "metalake.yaml").read_text())
    assert settings == {"weights": "resnet50-11ad3fa6.pth", "embedding_dim": 2048}
    assert (TEMPLATE / "code" / "requirements.txt").is_file()
    assert not (TEMPLATE / "label_list.yaml").exists()


def test_2048_finite_floats_per_image_and_deterministic(embedder: tuple[ModuleType, Any]) -> None:
    module, model = embedder
    images = [scene(index, size=(224, 224)).array() for index in range(4)]
    first = embed(module, model, images)
    assert len(first) == 4
    assert all(len(vector) == 2048 for vector in first)
    assert np.isfinite(np.array(first)).all()
    assert embed(module, model, images) == first
    assert first[0] != first[1]
    assert embed(module, model, images, payloads.JSON) == first  # PNG is lossless


@pytest.mark.parametrize("size", [(224, 224), (160, 120)])
def test_same_as_torchvision_with_the_same_weights(
    embedder: tuple[ModuleType, Any], reference: torch.nn.Module, size: tuple[int, int]
) -> None:
    """224x224 is what the engine sends by default; any other size is resized to it."""
    module, model = embedder
    images = [scene(index, size=size).array() for index in range(3)]
    ours = embed(module, model, images)
    theirs = reference_embeddings(reference, images)
    for vector, expected in zip(ours, theirs, strict=True):
        assert cosine(vector, expected) >= 0.9999


def test_missing_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METALAKE_OFFLINE", "1")
    monkeypatch.setenv("METALAKE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached download either
    module = load_inference(TEMPLATE)
    with pytest.raises(
        FileNotFoundError, match=r"put resnet50-11ad3fa6\.pth in \$METALAKE_WEIGHTS_DIR"
    ):
        module.model_fn(str(TEMPLATE))


def test_weights_from_metalake_weights_dir(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    resnet50_random_weights: Path,
    reference: torch.nn.Module,
) -> None:
    """The template as shipped, its weights file placed where install-defaults looks."""
    (tmp_path / "resnet50-11ad3fa6.pth").symlink_to(resnet50_random_weights)
    monkeypatch.setenv("METALAKE_WEIGHTS_DIR", str(tmp_path))
    module = load_inference(TEMPLATE)
    model = module.model_fn(str(TEMPLATE))
    image = scene(0, size=(224, 224)).array()
    assert (
        cosine(embed(module, model, [image])[0], reference_embeddings(reference, [image])[0])
        >= 0.9999
    )
