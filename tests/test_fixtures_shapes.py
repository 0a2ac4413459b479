"""The generated shapes data: deterministic, and its truth agrees with its pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.fixtures import shapes
from tests.fixtures.shapes import CLASSES, DatasetSpec, scene, write_yolo_datasets


def test_a_scene_is_a_pure_function_of_seed_and_index() -> None:
    first, again, other = scene(5, seed=1), scene(5, seed=1), scene(5, seed=2)
    assert np.array_equal(first.array(), again.array())
    assert first.shapes == again.shapes
    assert not np.array_equal(first.array(), other.array())


@pytest.mark.parametrize("index", range(20))
def test_truth_matches_the_drawn_pixels(index: int) -> None:
    item = scene(index)
    assert 1 <= len(item.shapes) <= 3
    masks = item.masks()
    assert not (masks.sum(axis=0) > 1).any(), "shapes never overlap"
    for shape, mask in zip(item.shapes, masks, strict=True):
        assert shape.label == CLASSES[shape.class_id]
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = shape.box
        # The mask fills its box: its extent is the box, to rasterisation (a pixel or two).
        assert abs(xs.min() - x1) <= 2
        assert abs(ys.min() - y1) <= 2
        assert abs(xs.max() - x2) <= 2
        assert abs(ys.max() - y2) <= 2
        side = x2 - x1
        expected = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}[shape.label]
        # PIL fills the outline inclusively: a side of s pixels covers s + 1 columns.
        assert mask.sum() / (side + 1) ** 2 == pytest.approx(expected, abs=0.1)


def test_every_class_is_drawn() -> None:
    labels = {s.label for index in range(30) for s in scene(index).shapes}
    assert labels == set(CLASSES)


def test_yolo_datasets_carry_the_truth(tmp_path: Path) -> None:
    spec = DatasetSpec(n_train=6, n_val=3, seed=4, image_size=96)
    paths = write_yolo_datasets(tmp_path / "ds", spec)
    truth = json.loads((tmp_path / "ds" / "truth.json").read_text())
    assert truth["generator_version"] == shapes.GENERATOR_VERSION
    assert [entry["split"] for entry in truth["images"]] == ["train"] * 6 + ["val"] * 3

    detect = yaml.safe_load(paths["detect"].read_text())
    assert detect["names"] == list(CLASSES)
    val = truth["images"][7]
    expected = scene(val["index"], seed=4, size=(96, 96))
    label = (tmp_path / "ds" / "detect" / "labels" / "val" / "00007.txt").read_text().split("\n")
    first = expected.shapes[0]
    cls, cx, cy, w, h = (float(v) for v in label[0].split())
    assert int(cls) == first.class_id
    x1, y1, x2, y2 = first.box
    assert (cx * 96, cy * 96, w * 96, h * 96) == pytest.approx(
        ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), abs=1e-3
    )

    segment = (tmp_path / "ds" / "segment" / "labels" / "val" / "00007.txt").read_text()
    values = [float(v) for v in segment.split("\n")[0].split()]
    polygon = np.array(values[1:]).reshape(-1, 2) * 96
    assert np.allclose(polygon, np.array(first.polygon), atol=1e-3)

    image = tmp_path / "ds" / "segment" / "images" / "val" / "00007.png"
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(image).convert("RGB")), expected.array())


def test_writing_again_keeps_the_dataset(tmp_path: Path) -> None:
    spec = DatasetSpec(n_train=2, n_val=1)
    paths = write_yolo_datasets(tmp_path / "ds", spec)
    stamp = paths["detect"].stat().st_mtime_ns
    assert write_yolo_datasets(tmp_path / "ds", spec) == paths
    assert paths["detect"].stat().st_mtime_ns == stamp
