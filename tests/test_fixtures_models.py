"""The models the suite trains itself: good enough to test with, cached, trained once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50

from tests.fixtures import models
from tests.fixtures.shapes import GENERATOR_VERSION, DatasetSpec

ROOT = Path(__file__).resolve().parents[1]


def test_cache_keys_follow_what_shapes_the_model() -> None:
    assert models.DETECTOR.key() == models.DETECTOR.key()
    assert models.DETECTOR.key().startswith(f"{GENERATOR_VERSION}-detect-")
    longer = replace(models.DETECTOR, options={**models.DETECTOR.options, "epochs": 16})
    other_data = replace(models.DETECTOR, dataset=DatasetSpec(seed=1))
    keys = {models.DETECTOR.key(), longer.key(), other_data.key(), models.SEGMENTER.key()}
    assert len(keys) == 4
    retrained_base = replace(models.SEGMENTER, init_from=longer)
    assert retrained_base.key() != models.SEGMENTER.key()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_trained_detector_is_accurate_and_cached(shapes_detector: models.TrainedModel) -> None:
    assert shapes_detector.weights.is_file()
    assert shapes_detector.weights.parent.name == models.DETECTOR.key()
    assert shapes_detector.metrics["map50_box"] >= 0.9
    started = time.monotonic()
    again = models.trained_detector()
    assert again.weights == shapes_detector.weights
    assert time.monotonic() - started < 10


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_trained_segmenter_is_accurate(shapes_segmenter: models.TrainedModel) -> None:
    assert shapes_segmenter.metrics["map50_box"] >= 0.9
    assert shapes_segmenter.metrics["map50_mask"] >= 0.9
    assert shapes_segmenter.metrics["spec"]["init_weights"] == str(
        models.trained_detector().weights
    )


def test_resnet50_random_is_torchvisions_init_under_a_seed(resnet50_random_weights: Path) -> None:
    assert models.resnet50_random() == resnet50_random_weights
    saved = torch.load(resnet50_random_weights, weights_only=True)
    torch.manual_seed(models.RESNET50_SEED)
    fresh = resnet50(weights=None).state_dict()
    assert saved.keys() == fresh.keys()
    for name in ("conv1.weight", "layer4.2.conv3.weight", "fc.weight"):
        assert torch.equal(saved[name], fresh[name])


@pytest.mark.slow
@pytest.mark.integration  # trains a model in two processes
@pytest.mark.timeout(600)
def test_parallel_processes_train_once(tmp_path: Path) -> None:
    """Two processes ask for the same untrained model at once: one trains, the other waits
    for the lock and takes the result."""
    tiny = models.TrainSpec(
        "detect",
        "yolov8n.yaml",
        {**models.COMMON_OPTIONS, "epochs": 1, "imgsz": 64, "batch": 8, "close_mosaic": 0},
        dataset=DatasetSpec(n_train=8, n_val=4, image_size=64),
    )
    script = (
        "import sys, dataclasses, json; from pathlib import Path\n"
        "from tests.fixtures import models\n"
        "from tests.fixtures.shapes import DatasetSpec\n"
        f"spec = models.TrainSpec('detect', 'yolov8n.yaml', {tiny.options!r}, "
        f"dataset=DatasetSpec(**{json.dumps(vars(tiny.dataset))}))\n"
        "print(models.trained(spec, cache=Path(sys.argv[1])).weights)\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=500) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    paths = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert paths == {str(tmp_path / tiny.key() / "best.pt")}
    ledger = (tmp_path / models.TRAININGS_LEDGER).read_text().splitlines()
    assert [json.loads(line)["key"] for line in ledger] == [tiny.key()]
