"""A script written for LayerNext's SDK runs against the engine with only its import line
changed: upload a folder with metadata, tags and annotations, query with sort_order, count,
register a bundle and auto-tag with it, wait for the job, download the annotations and a
dataset, trash a subset. Real API, worker, PostgreSQL and Redis; the shapes detector bundle."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
IMAGES = 12
ANNOTATED = 4  # images with a human box each in annotations.json
SCALE = 2  # images are stored at 320x320; the job resizes to 160x160

# As a LayerNext user writes it (the SDK manual's calls, positional where it shows them so).
SCRIPT = """
import json
import os
from layernext import LayerNextClient

api_key, secret, url = os.environ["LN_KEY"], "", os.environ["LN_URL"]
data, out, bundle = os.environ["LN_DATA"], os.environ["LN_OUT"], os.environ["LN_BUNDLE"]
client = LayerNextClient(api_key, secret, url)

res = client.upload_files_to_collection(
    f"{data}/images",
    "image",
    "ln_shapes",
    meta_data_object={"site": "north", "Tags": ["batch-1"]},
    metadata_file_path=f"{data}/metadata.json",
    annotation_data={
        "json_data_file_path": f"{data}/annotations.json",
        "operation_unique_id": "gt-1",
        "is_normalized": False,
        "is_model_run": False,
    },
)
collection_id = res["collection_id"]
upload = client.wait_for_job_complete(res["job_id"])
assert client.get_collection_id_by_name("ln_shapes", "image") == collection_id

first = client.get_item_list_from_collection(
    collection_id, "", {}, 0, 5, {"sort_by_field": "name", "sort_order": "DESC"}
)
second = client.get_item_list_from_collection(
    collection_id, "", {}, 1, 5, {"sort_by_field": "name", "sort_order": "DESC"}
)
total = client.get_item_count_from_collection(collection_id)["itemCount"]
human = client.get_item_count_from_collection(collection_id, "", {"annotation_types": ["human"]})
checked = client.get_item_count_from_metalake("image", 'tag="checked"')["itemCount"]
details = client.get_file_details(
    "ln_shapes_img000.png", {"Tags": True, "site": True, "split": True}
)

client.register_model(bundle, "ln_shapes_yolo", "auto_tagging")
job = client.auto_tag_collection(collection_id, "ln_shapes_yolo", (160, 160), 0.5)
status = client.wait_for_job_complete(job["jobId"])
tagged = client.get_item_count_from_collection(
    collection_id, "tag=circle OR tag=square OR tag=triangle"
)["itemCount"]

client.download_collection(collection_id, "human", [], f"{out}/annotations")
dataset = client.create_dataset_from_collection(
    "ln_shapes_ds", collection_id, {"train": 75, "test": 25}
)
exported = client.download_dataset(dataset["version_id"], "coco", f"{out}/dataset")
client.delete_dataset_version(dataset["version_id"])
trashed = client.trash_objects_from_collection(collection_id, 'metadata.split="even"')
left = client.get_item_count_from_collection(collection_id)["itemCount"]

print(json.dumps({
    "res": res, "upload": upload, "first": [i["uniqueName"] for i in first],
    "second": [i["uniqueName"] for i in second], "total": total, "human": human["itemCount"],
    "checked": checked, "details": details, "job": job, "status": status["job_status"],
    "tagged": tagged, "dataset": dataset["version_id"], "exported": exported["items"],
    "trashed": trashed["trashed"], "left": left,
}))
"""


def _data(folder: Path) -> None:
    """Shape images, LayerNext's metadata file and its annotation file for some of them."""
    (folder / "images").mkdir(parents=True)
    annotations, metadata = [], []
    for index in range(IMAGES):
        s = scene(index, seed=11)
        name = f"img{index:03d}.png"
        s.image.resize((160 * SCALE, 160 * SCALE), Image.Resampling.NEAREST).save(
            folder / "images" / name
        )
        if index < ANNOTATED:
            x1, y1, x2, y2 = (v * SCALE for v in s.shapes[0].box)
            box = {"type": "rectangle", "bbox": [x1, y1, x2 - x1, y2 - y1]}
            annotations.append(
                {"image": name, "annotations": [{**box, "label": s.shapes[0].label}]}
            )
        if index % 2 == 0:
            metadata.append({"file": name, "metadata": {"split": "even", "Tags": ["checked"]}})
    (folder / "annotations.json").write_text(json.dumps({"images": annotations}))
    (folder / "metadata.json").write_text(json.dumps({"files": metadata}))


def test_a_layernext_script_runs_with_only_its_import_changed(
    api_url: str,
    admin_key: str,
    worker: Any,
    shapes_detector_bundle: Path,
    tmp_path: Path,
) -> None:
    _data(tmp_path / "data")
    ours = SCRIPT.replace(
        "from layernext import LayerNextClient", "from sdk import LayerNextClient"
    )
    changed = [
        line
        for line in difflib.unified_diff(SCRIPT.splitlines(), ours.splitlines(), lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-from layernext import LayerNextClient", "+from sdk import LayerNextClient"]

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("METALAKE_")},
        "PYTHONPATH": str(ROOT),
        "LN_KEY": admin_key,
        "LN_URL": api_url,
        "LN_DATA": str(tmp_path / "data"),
        "LN_OUT": str(tmp_path / "out"),
        "LN_BUNDLE": str(shapes_detector_bundle),
        "METALAKE_HOME": str(tmp_path / "client-home"),
    }
    run = subprocess.run(
        [sys.executable, "-c", ours],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    cid = result["res"]["collection_id"]
    assert result["res"] == {"is_success": True, "job_id": f"upload-{cid}", "collection_id": cid}
    assert result["upload"] == {"is_success": True, "job_status": "COMPLETED"}
    names = sorted((f"ln_shapes_img{i:03d}.png" for i in range(IMAGES)), reverse=True)
    assert result["first"] == names[:5]
    assert result["second"] == names[5:10]
    assert result["total"] == IMAGES
    assert result["human"] == ANNOTATED
    assert result["checked"] == IMAGES // 2
    assert result["details"] == {"Tags": ["batch-1", "checked"], "site": "north", "split": "even"}
    assert isinstance(result["job"]["jobId"], int)
    assert result["status"] == "COMPLETED"
    assert result["tagged"] >= IMAGES - 2  # the detector finds shapes in (nearly) every image
    assert result["exported"] == IMAGES
    assert (result["trashed"], result["left"]) == (IMAGES // 2, IMAGES - IMAGES // 2)

    document = json.loads((tmp_path / "out" / "annotations" / "annotations.json").read_text())
    boxes = [a for image in document["images"] for a in image["annotations"]]
    assert len(boxes) == ANNOTATED
    assert {a["source"] for a in boxes} == {"human"}
    assert {a["operation_id"] for a in boxes} == {"gt-1"}
    assert len(list((tmp_path / "out" / "annotations" / "images").iterdir())) == IMAGES
    coco = [p for p in (tmp_path / "out" / "dataset").rglob("*.json") if "export" not in p.name]
    assert coco, "the COCO dataset has its annotation files"
    images = sum(len(json.loads(p.read_text())["images"]) for p in coco)
    assert images == IMAGES
