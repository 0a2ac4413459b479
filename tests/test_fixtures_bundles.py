"""Bundles built from the templates' code and the suite's own weights, in the seed layout."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import yaml

from tests.fixtures import bundles
from tests.fixtures.bundles import TEMPLATES
from tests.fixtures.shapes import CLASSES


def _same_code(bundle: Path, template: str) -> None:
    for name in ("inference.py", "requirements.txt"):
        assert (bundle / "code" / name).read_bytes() == (
            TEMPLATES / template / "code" / name
        ).read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_detector_bundle_layout(shapes_detector_bundle: Path) -> None:
    _same_code(shapes_detector_bundle, "yolov8_autotag")
    assert yaml.safe_load((shapes_detector_bundle / "label_list.yaml").read_text()) == list(CLASSES)
    settings = yaml.safe_load((shapes_detector_bundle / "metalake.yaml").read_text())
    weights = shapes_detector_bundle / settings["weights"]
    assert weights.is_file()
    assert not weights.is_symlink()
    assert sorted(p.name for p in shapes_detector_bundle.iterdir()) == sorted(
        ["code", "label_list.yaml", "metalake.yaml", settings["weights"]]
    )


def test_resnet50_bundle_layout(resnet50_random_bundle: Path) -> None:
    _same_code(resnet50_random_bundle, "resnet50_embedding")
    assert not (resnet50_random_bundle / "label_list.yaml").exists()
    settings = yaml.safe_load((resnet50_random_bundle / "metalake.yaml").read_text())
    assert settings["embedding_dim"] == 2048
    assert (resnet50_random_bundle / settings["weights"]).is_file()


def test_pack_puts_the_bundle_at_the_archive_root(
    resnet50_random_bundle: Path, tmp_path: Path
) -> None:
    archive = bundles.pack(resnet50_random_bundle, tmp_path / "bundle.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert all(member.isfile() or member.isdir() for member in tar.getmembers())
    assert {"code/inference.py", "code/requirements.txt", "metalake.yaml"} <= names
    assert not any(name.startswith(("/", "..")) for name in names)


def test_every_template_defines_the_required_hooks() -> None:
    for name in bundles.TEMPLATE_NAMES:
        module = bundles.load_inference(TEMPLATES / name)
        for hook in ("model_fn", "predict_fn"):  # input_fn and output_fn: the host's defaults
            assert callable(getattr(module, hook)), f"{name} lacks {hook}"
        assert (TEMPLATES / name / "README.md").is_file()
        assert (TEMPLATES / name / "metalake.yaml").is_file()
