"""The trash (`POST /items/trash`, LayerNext's `trash_objects_from_*`) on the real API with
managed storage: trashed files leave every query at once with their annotations, tags and
vectors, their managed bytes go unless another file shares them, and files a dataset version
holds are refused with nothing deleted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from engine.config import Settings
from engine.uris import file_uri, local_path
from sdk import BadRequest, Conflict, LayerNextClient, NotFound


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"managed_storage_url": file_uri(tmp_path / "managed")})


@pytest.fixture
def ln(api_url: str, admin_key: str) -> Any:
    with LayerNextClient(admin_key, "", api_url) as client:
        yield client


def _folder(folder: Path, seeds: dict[str, int]) -> Path:
    folder.mkdir(parents=True)
    for name, seed in seeds.items():
        pixels = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


def _stored(ln: Any, unique_name: str) -> Path:
    return local_path(ln.client.get_file_details(unique_name)["storage_uri"])


def _vectors(ln: Any) -> int:
    return int({s["name"]: s["vectors"] for s in ln.client.list_embedding_spaces()}["ext"])


def _gone(path: Path) -> bool:
    deadline = time.monotonic() + 10  # removed by a task that runs after the response
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not path.exists()


def test_trash_takes_files_out_with_everything_on_them(ln: Any, tmp_path: Path) -> None:
    res = ln.upload_files_to_collection(
        str(_folder(tmp_path / "a", {"x.png": 1, "y.png": 2, "z.png": 3})), "image", "cats"
    )
    ln.upload_files_to_collection(str(_folder(tmp_path / "b", {"same.png": 1})), "image", "dogs")
    cid = res["collection_id"]
    ln.client.add_tags("cats_x.png", ["blurry"])
    ln.client.add_tags("cats_y.png", ["blurry"])
    ln.client.add_annotations(
        "cats_x.png", [{"label": "Cat", "geometry": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}}]
    )
    ln.insert_image_embeddings([{"uniqueName": "cats_x.png", "embeddings": [1.0, 0.0]}], "ext", [2])
    assert _vectors(ln) == 1
    x_bytes, y_bytes = _stored(ln, "cats_x.png"), _stored(ln, "cats_y.png")
    assert x_bytes == _stored(ln, "dogs_same.png")  # the same bytes, stored once

    result = ln.trash_objects_from_datalake("tag=blurry", {}, "image")
    assert (result["isSuccess"], result["trashed"]) == (True, 2)
    assert sorted(result["unique_names"]) == ["cats_x.png", "cats_y.png"]
    assert result["stored_bytes_removed"] == 1  # x's bytes are dogs_same.png's too

    assert ln.get_item_count_from_collection(cid) == {"isSuccess": True, "itemCount": 1}
    assert ln.get_item_count_from_metalake("image", "tag=blurry")["itemCount"] == 0
    with pytest.raises(NotFound):
        ln.get_file_details("cats_x.png")
    assert _vectors(ln) == 0  # cats_x.png's vector went with it
    assert _gone(y_bytes)
    assert x_bytes.exists()
    assert httpx.get(ln.get_downloadable_url("dogs_same.png")).content == x_bytes.read_bytes()

    emptied = ln.trash_objects_from_collection(str(cid))
    assert (emptied["trashed"], emptied["unique_names"]) == (1, ["cats_z.png"])
    assert ln.get_collection_details(str(cid), {"fileCount": True}) == {"fileCount": 0}
    assert ln.get_item_count_from_metalake("image")["itemCount"] == 1  # dogs_same.png


def test_trash_refuses_what_it_cannot_take(ln: Any, tmp_path: Path, api_url: str) -> None:
    res = ln.upload_files_to_collection(
        str(_folder(tmp_path / "a", {"x.png": 1, "y.png": 2})), "image", "cats"
    )
    cid = res["collection_id"]
    version = ln.create_dataset_from_collection("cats-ds", str(cid), {"train": 100})
    with pytest.raises(Conflict, match=f"Dataset version\\(s\\) \\[{version['version_id']}\\]"):
        ln.trash_objects_from_collection(str(cid), 'name="cats_x.png"')
    assert ln.get_item_count_from_collection(cid)["itemCount"] == 2  # nothing deleted
    ln.delete_dataset_version(str(version["version_id"]))
    assert ln.trash_objects_from_collection(str(cid), 'name="cats_x.png"')["trashed"] == 1

    with pytest.raises(BadRequest, match="whole lake"):
        ln.trash_objects_from_datalake("", {})
    refused = httpx.post(
        f"{api_url}/api/v1/items/trash",
        json={"content_type": "image"},
        headers={"Authorization": f"Bearer {ln.client.api_key}"},
    )
    assert refused.status_code == 422
    assert "whole lake" in refused.text
    assert ln.trash_objects_from_datalake('name="nothing.png"')["trashed"] == 0
    assert ln.get_item_count_from_metalake("image")["itemCount"] == 1
