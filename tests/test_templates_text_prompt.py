"""model_templates/text_prompt_annotation, without its real weights.

YOLO-World, CLIP and SAM weights cannot be had here, so these tests cover: request and
prompt parsing, the polygons made from masks, the errors for missing weights and a missing
`clip` package, and the whole model_fn -> predict_fn -> output_fn path run for real through
ultralytics' YOLOWorld and SAM code with *random* weights and a fake CLIP text encoder
(tests/fixtures/fake_clip.py). That proves the plumbing and the response contract, not the
quality of the annotations, which needs the real weights.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from ultralytics.engine.results import Results

from engine.hosting import serve
from tests.fixtures import payloads
from tests.fixtures.bundles import TEMPLATES, load_inference, run_request
from tests.fixtures.shapes import polygon_mask, scene

TEMPLATE = TEMPLATES / "text_prompt_annotation"
PROMPT = [
    {"label": "circle", "description": "a round blob"},
    {"label": "square", "description": "a box with four corners"},
]


@pytest.fixture(scope="module")
def template() -> ModuleType:
    return load_inference(TEMPLATE)


def test_template_layout() -> None:
    settings = yaml.safe_load((TEMPLATE / "metalake.yaml").read_text())
    assert settings["weights"] == "yolov8s-worldv2.pt"
    assert settings["extra_weights"] == {
        "text_encoder": "ViT-B-32.pt",
        "segmenter": "mobile_sam.pt",
    }
    labels = yaml.safe_load((TEMPLATE / "label_list.yaml").read_text())
    assert len(labels) == len(set(labels)) == 80
    requirements = (TEMPLATE / "code" / "requirements.txt").read_text()
    assert "openai-clip" in requirements


def test_prompt_mapping(template: ModuleType) -> None:
    default = [template.Prompt("dog", "dog")]
    prompts = template.prompts_from(
        {
            "prompt": [
                *PROMPT,
                {"label": "triangle"},
                "a cat",
                {"label": "again", "description": "a round blob"},
            ]
        },
        default,
    )
    assert [(p.label, p.description) for p in prompts] == [
        ("circle", "a round blob"),
        ("square", "a box with four corners"),
        ("triangle", "triangle"),
        ("a cat", "a cat"),
    ]  # the duplicate description is dropped
    assert template.prompts_from({}, default) == default
    assert template.prompts_from({"prompt": []}, default) == default
    with pytest.raises(ValueError, match="neither a label nor a description"):
        template.prompts_from({"prompt": [{"label": " "}]}, default)


def test_request_parsing_carries_the_prompt() -> None:
    images = [scene(index).array() for index in range(2)]
    params = payloads.parameters("auto_annotation", (160, 160), 2, prompt=PROMPT)
    for body, kind in (
        (payloads.npz_request(images, params), payloads.NPZ),
        (payloads.json_request(images, params).decode(), payloads.JSON),
    ):
        decoded, parameters = serve.default_input_fn(body, kind)
        assert parameters == params
        assert all(np.array_equal(a, b) for a, b in zip(decoded, images, strict=True))


def _sam_like_result(item: Any, keep: list[int]) -> Results:
    """What ultralytics' SAM returns for box prompts: masks plus boxes whose `cls` column is
    the prompt index (SAM drops the masks it scores below `conf`)."""
    masks = torch.from_numpy(item.masks()[keep])
    rows = torch.tensor([[*item.shapes[i].box, 0.9, i] for i in keep], dtype=torch.float32)
    return Results(
        item.array()[..., ::-1].copy(),
        path="scene.png",
        names={i: str(i) for i in range(len(item.shapes))},
        boxes=rows,
        masks=masks,
    )


def test_polygons_from_masks_follow_the_prompts(template: ModuleType) -> None:
    item = next(s for s in (scene(i) for i in range(100)) if len(s.shapes) == 3)
    result = _sam_like_result(item, keep=[0, 2])
    polygons = template.per_prompt_polygons(result, 3)
    assert polygons[1] == []  # SAM gave no mask for prompt 1
    for index in (0, 2):
        drawn = polygon_mask([tuple(p) for p in polygons[index]], (160, 160))
        truth = polygon_mask(item.shapes[index].polygon, (160, 160))
        assert (drawn & truth).sum() / (drawn | truth).sum() >= 0.9
    assert template.per_prompt_polygons(Results(item.array(), "x", {0: "0"}), 2) == [[], []]


def test_missing_weights_is_a_clear_error(
    template: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("METALAKE_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"put yolov8s-worldv2\.pt in \$METALAKE_WEIGHTS_DIR"
    ):
        template.model_fn(str(TEMPLATE))
    (tmp_path / "yolov8s-worldv2.pt").write_bytes(b"")
    (tmp_path / "ViT-B-32.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"put mobile_sam\.pt in"):
        template.model_fn(str(TEMPLATE))


def test_missing_clip_package_is_a_clear_error(
    template: ModuleType, monkeypatch: pytest.MonkeyPatch, text_prompt_random_bundle: Path
) -> None:
    monkeypatch.setitem(sys.modules, "clip", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match="pip install openai-clip"):
        template.model_fn(str(text_prompt_random_bundle))


def annotate(
    module: ModuleType, model: Any, images: list[np.ndarray], prompt: list[dict[str, str]] | None
) -> list[dict[str, Any]]:
    # Random weights score everything near 0: a 0 threshold makes them return boxes.
    params = payloads.parameters(
        "auto_annotation", (160, 160), len(images), confidence=0.0, prompt=prompt
    )
    body = payloads.npz_request(images, params)
    return run_request(module, model, body, payloads.NPZ)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_end_to_end_with_random_weights(
    text_prompt_random_bundle: Path,
    fake_clip_module: tuple[ModuleType, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, loaded = fake_clip_module
    module = load_inference(text_prompt_random_bundle)
    monkeypatch.setattr(module, "MAX_DETECTIONS", 3)  # SAM on CPU takes seconds per image
    model = module.model_fn(str(text_prompt_random_bundle))
    assert loaded == [str(text_prompt_random_bundle / "ViT-B-32.pt")]

    answer = annotate(module, model, [scene(index).array() for index in range(2)], PROMPT)
    descriptions = [p["description"] for p in PROMPT]
    assert model.detector.model.names == descriptions  # YOLO-World's classes = the prompt
    assert len(answer) == 2
    for item in answer:
        assert set(item) == {"boxes", "masks", "logits", "phrases"}
        count = len(item["boxes"])
        assert 0 < count <= 3
        assert len(item["masks"]) == len(item["logits"]) == len(item["phrases"]) == count
        assert set(item["phrases"]) <= set(descriptions)
        assert all(len(box) == 4 for box in item["boxes"])
        assert all(all(len(point) == 2 for point in polygon) for polygon in item["masks"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_boxes_only_and_changing_prompts(
    text_prompt_random_bundle: Path, tmp_path: Path, fake_clip_module: tuple[ModuleType, list[str]]
) -> None:
    """`segmenter: null` gives boxes without masks; each new prompt re-embeds the
    vocabulary with the one text encoder loaded at start."""
    _, loaded = fake_clip_module
    bundle = tmp_path / "boxes_only"
    shutil.copytree(text_prompt_random_bundle, bundle, copy_function=os.link)
    settings = yaml.safe_load((bundle / "metalake.yaml").read_text())
    settings["extra_weights"]["segmenter"] = None
    (bundle / "metalake.yaml").write_text(yaml.safe_dump(settings))
    module = load_inference(bundle)
    model = module.model_fn(str(bundle))
    images = [scene(0).array()]

    first = annotate(module, model, images, PROMPT)
    assert first[0]["masks"] is None
    assert first[0]["phrases"]
    assert set(first[0]["phrases"]) <= {p["description"] for p in PROMPT}

    other = annotate(module, model, images, [{"label": "triangle", "description": "a triangle"}])
    assert set(other[0]["phrases"]) == {"a triangle"}
    assert model.detector.model.names == ["a triangle"]

    default = annotate(module, model, images, None)  # label_list.yaml is the vocabulary
    assert set(default[0]["phrases"]) <= {"circle", "square", "triangle"}
    assert len(loaded) == 1
