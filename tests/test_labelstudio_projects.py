"""Label Studio projects managed through the engine, by LayerNext's calls, against a real Label
Studio (tests/fixtures/labelstudio.py) set as the engine's own: list, name, labels in and out
of the labeling config (also a label group's), an operation's annotations as predictions,
files added from a collection and from the lake, projects from the lake, deletion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from engine.config import Settings
from sdk import BadRequest, LayerNextClient, NotFound
from tests.fixtures.labelstudio import LabelStudio, label_studio  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SIDE = 64


@pytest.fixture
def api_settings(settings: Settings, label_studio: LabelStudio) -> Settings:
    """The engine talks to the test's Label Studio (METALAKE_LABELSTUDIO_URL / _TOKEN)."""
    return settings.model_copy(
        update={"labelstudio_url": label_studio.url, "labelstudio_token": label_studio.token}
    )


@pytest.fixture
def ln(api_url: str, admin_key: str) -> Any:
    with LayerNextClient(admin_key, "", api_url) as client:
        yield client


def _collection(ln: Any, root: Path, name: str, files: list[str]) -> int:
    folder = root / name
    folder.mkdir(parents=True)
    for index, file in enumerate(files):
        Image.new("RGB", (SIDE, SIDE), (40 * index, 90, 200)).save(folder / file)
    result = ln.upload_files_to_collection(str(folder), "image", name)
    return int(result["collection_id"])


def _annotate(
    ln: Any,
    root: Path,
    collection: str,
    operation: str,
    boxes: dict[str, tuple[str, list[float]]],
    *,
    model_run: bool,
) -> None:
    """LayerNext's annotation JSON: one rectangle (`[x, y, w, h]`, pixels) per image."""
    document = root / f"{collection}-{operation}.json"
    images = [
        {"image": image, "annotations": [{"type": "rectangle", "bbox": bbox, "label": label}]}
        for image, (label, bbox) in boxes.items()
    ]
    document.write_text(json.dumps({"images": images}))
    report = ln.upload_annotations_for_collection(
        collection, operation, str(document), False, model_run
    )
    assert report["written"] == len(boxes)


def _project(ls: httpx.Client, pid: int) -> dict[str, Any]:
    response = ls.get(f"/api/projects/{pid}")
    response.raise_for_status()
    project: dict[str, Any] = response.json()
    return project


def _tasks(ls: httpx.Client, pid: int) -> list[dict[str, Any]]:
    response = ls.get(
        f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
    )
    response.raise_for_status()
    tasks: list[dict[str, Any]] = response.json()
    predictions = ls.get("/api/predictions/", params={"project": pid})
    predictions.raise_for_status()
    for task in tasks:
        task["predictions"] = [p for p in predictions.json() if p["task"] == task["id"]]
    return tasks


def _offered(config: str) -> set[str]:
    """Labels the config offers, per control: every control must offer the same."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(config)
    controls = [e for e in root.iter() if e.tag.endswith("Labels")]
    assert controls
    sets = [{label.get("value") for label in c.iter("Label")} for c in controls]
    assert all(s == sets[0] for s in sets), sets
    return {str(v) for v in sets[0]}


def test_a_project_is_listed_named_relabelled_predicted_and_deleted(
    ln: Any,
    label_studio: LabelStudio,
    tmp_path: Path,
) -> None:
    cid = _collection(ln, tmp_path, "studio", ["a.png", "b.png", "c.png"])
    _annotate(
        ln,
        tmp_path,
        "studio",
        "gt-1",
        {"a.png": ("Bird", [1, 2, 10, 20]), "b.png": ("Bird", [3, 3, 30, 30])},
        model_run=False,
    )
    run = {
        "a.png": ("Nest", [8, 16, 32, 16]),
        "b.png": ("Nest", [0, 0, 16, 16]),
        "c.png": ("Egg", [4, 4, 8, 8]),
    }
    _annotate(ln, tmp_path, "studio", "run-1", run, model_run=True)

    made = ln.create_annotation_project_from_collection("birds review", str(cid))
    pid = made["project_id"]
    assert made["task_count"] == 3

    listed = {p["id"]: p for p in ln.get_annotation_project_list()}
    assert listed[pid]["name"] == "birds review"
    assert listed[pid]["task_count"] == 3
    assert set(listed[pid]["labels"]) == {"Bird", "Egg", "Nest"}
    assert ln.get_annotation_project_name_by_id(str(pid)) == {"projectName": "birds review"}

    # labels in and out of the labeling config, in every label control
    added = ln.add_labels_to_studio_project(str(pid), ["Feather", "Bird"])
    assert added["is_success"] is True
    assert set(added["labels"]) == {"Bird", "Egg", "Feather", "Nest"}
    with label_studio.api() as ls:
        assert _offered(_project(ls, pid)["label_config"]) == {"Bird", "Egg", "Feather", "Nest"}
    removed = ln.remove_labels_to_studio_project(str(pid), ["Feather", "Egg"])
    assert set(removed["labels"]) == {"Bird", "Nest"}
    with label_studio.api() as ls:
        assert _offered(_project(ls, pid)["label_config"]) == {"Bird", "Nest"}
    with pytest.raises(BadRequest, match="no label"):
        ln.remove_labels_to_studio_project(str(pid), ["Bird", "Nest"])
    with pytest.raises(BadRequest, match="integer id"):
        ln.add_labels_to_studio_project("64b0c0ffee64b0c0ffee64b0", ["Bird"])

    # a label group of the registry
    beak = ln.create_system_label({"className": "Beak"})
    wing = ln.create_system_label({"className": "Wing"})
    group = ln.create_label_group("parts", [beak["label_reference"], wing["label_reference"]])
    grouped = ln.attach_label_group_to_annotation_project(str(pid), group["id"])
    assert set(grouped["labels"]) == {"Beak", "Bird", "Nest", "Wing"}
    with label_studio.api() as ls:
        assert _offered(_project(ls, pid)["label_config"]) == {"Beak", "Bird", "Nest", "Wing"}
    with pytest.raises(NotFound):
        ln.attach_label_group_to_annotation_project(str(pid), group["id"] + 100)

    # a model run's annotations as predictions; the label the config lacked (Egg) is added
    attached = ln.attach_model_run_to_project(str(pid), ["run-1"])
    assert attached["is_success"] is True
    assert (attached["task_count"], attached["prediction_count"]) == (3, 3)
    assert attached["labels_added"] == ["Egg"]
    with label_studio.api() as ls:
        tasks = _tasks(ls, pid)
        assert "Egg" in _offered(_project(ls, pid)["label_config"])
    assert len(tasks) == 3
    for task in tasks:
        name = task["data"]["metalake_unique_name"]
        label, (x, y, w, h) = run[name.removeprefix("studio_")]
        [prediction] = task["predictions"]
        assert prediction["model_version"] == "run-1"
        [result] = prediction["result"]
        assert result["value"]["rectanglelabels"] == [label]
        got = [result["value"][k] for k in ("x", "y", "width", "height")]
        assert got == pytest.approx([100 * v / SIDE for v in (x, y, w, h)])
    with pytest.raises(NotFound, match="no-such-run"):
        ln.attach_model_run_to_project(str(pid), ["no-such-run"])
    with pytest.raises(BadRequest, match="operation_id_array"):
        ln.attach_model_run_to_project(str(pid), [""])

    # deleted in Label Studio; the lake's annotations stay
    assert ln.delete_annotation_project(str(pid))["is_success"] is True
    with label_studio.api() as ls:
        assert ls.get(f"/api/projects/{pid}").status_code == 404
    assert pid not in {p["id"] for p in ln.get_annotation_project_list()}
    with pytest.raises(BadRequest, match="404"):
        ln.get_annotation_project_name_by_id(str(pid))
    assert len(ln.client.list_annotations("studio_a.png")) == 2


def test_files_join_a_project_from_a_collection_and_from_the_lake(
    ln: Any,
    label_studio: LabelStudio,
    tmp_path: Path,
) -> None:
    _collection(ln, tmp_path, "birds", ["a.png", "b.png"])
    cats = _collection(ln, tmp_path, "cats", ["a.png", "b.png"])
    _collection(ln, tmp_path, "other", ["z.png"])
    birds = {"a.png": ("Bird", [1, 1, 9, 9]), "b.png": ("Bird", [2, 2, 9, 9])}
    _annotate(ln, tmp_path, "birds", "gt", birds, model_run=False)
    cat_boxes = {"a.png": ("Cat", [1, 1, 9, 9]), "b.png": ("Cat", [5, 5, 9, 9])}
    _annotate(ln, tmp_path, "cats", "gt", cat_boxes, model_run=False)

    made = ln.create_annotation_project_from_datalake("from the lake", "annotation.label=Bird")
    pid = made["project_id"]
    assert made["task_count"] == 2
    assert made["labels"] == ["Bird"]

    added = ln.add_files_to_annotation_project_from_collection(str(pid), str(cats), "", {})
    assert added["is_success"] is True
    assert (added["task_count"], added["skipped"]) == (2, 0)
    assert added["labels_added"] == ["Cat"]
    with label_studio.api() as ls:
        tasks = _tasks(ls, pid)
        assert _offered(_project(ls, pid)["label_config"]) == {"Bird", "Cat"}
    names = sorted(t["data"]["metalake_unique_name"] for t in tasks)
    assert names == ["birds_a.png", "birds_b.png", "cats_a.png", "cats_b.png"]
    for task in tasks:  # each image at a signed URL that needs no key
        image = httpx.get(task["data"]["image"], timeout=30)
        assert image.status_code == 200
        assert (
            image.content
            == (tmp_path / task["data"]["metalake_unique_name"].replace("_", "/", 1)).read_bytes()
        )

    # files the project has are skipped; a selection from the lake adds the rest
    again = ln.add_files_to_annotation_project_from_collection(str(pid), str(cats), "", {})
    assert (again["task_count"], again["skipped"]) == (0, 2)
    lake = ln.add_files_to_annotation_project_from_datalake(
        str(pid), "name=other_z.png", {}, "image"
    )
    assert (lake["task_count"], lake["skipped"], lake["labels_added"]) == (1, 0, [])
    with label_studio.api() as ls:
        assert len(_tasks(ls, pid)) == 5

    with pytest.raises(BadRequest, match="whole lake"):
        ln.add_files_to_annotation_project_from_datalake(str(pid), "", {}, "image")
    with pytest.raises(BadRequest, match="images"):
        ln.add_files_to_annotation_project_from_datalake(str(pid), "name=other_z.png", {}, "video")
    with pytest.raises(BadRequest, match="images"):
        ln.create_annotation_project_from_datalake("videos", "name=other_z.png", {}, "video")
