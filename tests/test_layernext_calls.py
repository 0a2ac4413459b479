"""LayerNextClient's calls on the real API (no worker): uploads with Tags, metadata files,
LayerNext's annotation JSON, field filters, sorting, counts, embeddings, and the refusals; and
the native client's LayerNext spellings (`filters=`, `item_type=`, `sort_order`, `task=`,
`input_model_path=`); the label registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from sdk import BadRequest, Conflict, LayerNextClient, NotFound, NotSupportedYet


def _images(folder: Path, sizes: dict[str, int]) -> Path:
    """PNG files of different byte sizes (noise of `side` pixels)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, side in sizes.items():
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


@pytest.fixture
def ln(api_url: str, admin_key: str) -> Any:
    with LayerNextClient(admin_key, "", api_url) as client:
        yield client


@pytest.fixture
def birds(ln: Any, tmp_path: Path) -> dict[str, Any]:
    """Collection `birds`: a.png (small), b.png (large), c.png (medium), with Tags."""
    folder = _images(tmp_path / "birds", {"b.png": 64, "a.png": 16, "c.png": 32})
    res = ln.upload_files_to_collection(
        str(folder), "image", "birds", {"camera": "cam 1", "Tags": ["field", "2024"]}
    )
    return res


def test_upload_returns_layernext_shape_and_tags_become_tags(
    ln: Any, birds: dict[str, Any]
) -> None:
    cid = birds["collection_id"]
    assert birds == {"is_success": True, "job_id": f"upload-{cid}", "collection_id": cid}
    assert ln.wait_for_job_complete(birds["job_id"]) == {
        "is_success": True,
        "job_status": "COMPLETED",
    }
    details = ln.get_file_details("birds_a.png", {"Tags": True, "camera": True, "fileSize": True})
    assert details["Tags"] == ["2024", "field"]
    assert details["camera"] == "cam 1"
    assert details["fileSize"] > 0
    assert "Tags" not in ln.client.get_file_details("birds_a.png")["metadata"]
    assert ln.get_collection_id_by_name("birds", "image") == cid
    assert ln.get_collection_details(str(cid), {"name": True, "fileCount": True}) == {
        "name": "birds",
        "fileCount": 3,
    }
    assert ln.get_item_count_from_collection(cid, 'tag="2024"') == {
        "isSuccess": True,
        "itemCount": 3,
    }
    stats = ln.get_system_stat_count()
    assert (stats["imageCount"], stats["videoCount"], stats["collectionCount"]) == (3, 0, 1)


def test_sort_order_is_applied_by_the_engine_across_pages(ln: Any, birds: dict[str, Any]) -> None:
    cid = birds["collection_id"]

    def names(page_index: int, page_size: int, sort: dict[str, str]) -> list[str]:
        items = ln.get_item_list_from_collection(cid, "", {}, page_index, page_size, sort)
        return [i["uniqueName"] for i in items]

    assert names(0, 3, {"sort_by_field": "size", "sort_order": "DESC"}) == [
        "birds_b.png",
        "birds_c.png",
        "birds_a.png",
    ]
    by_name = {"sort_by_field": "name", "sort_order": "DESC"}
    assert names(0, 2, by_name) + names(1, 2, by_name) == [
        "birds_c.png",
        "birds_b.png",
        "birds_a.png",
    ]
    # registration order reversed: the files were registered in name order
    assert names(0, 3, {"sort_order": "DESC"}) == ["birds_c.png", "birds_b.png", "birds_a.png"]
    # the native client reads the same sort_order
    native = ln.client.get_item_list_from_datalake(
        "image", None, None, 0, 3, {"sort_by_field": "size", "sort_order": "ASC"}
    )
    assert [i["uniqueName"] for i in native] == ["birds_a.png", "birds_c.png", "birds_b.png"]
    with pytest.raises(BadRequest, match="sort_by_field must be one of"):
        names(0, 3, {"sort_by_field": "colour"})
    with pytest.raises(NotSupportedYet, match="video_index"):
        names(0, 3, {"sort_by_field": "video_index"})


def test_metadata_files_write_fields_and_tags_all_checked_first(
    ln: Any, birds: dict[str, Any], tmp_path: Path
) -> None:
    good = tmp_path / "meta.json"
    good.write_text(
        json.dumps(
            {
                "files": [
                    {"file": "a.png", "metadata": {"weather": "rain", "Tags": ["wet"]}},
                    {"file": "b.png", "metadata": {"weather": "sun"}},
                ]
            }
        )
    )
    assert ln.upload_metadata_by_job_id(birds["job_id"], str(good))["files"] == 2
    assert ln.get_file_details("birds_a.png", {"weather": True, "Tags": True}) == {
        "weather": "rain",
        "Tags": ["2024", "field", "wet"],
    }
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "files": [
                    {"file": "birds_c.png", "metadata": {"weather": "fog"}},
                    {"file": "birds_nope.png", "metadata": {"weather": "fog"}},
                ]
            }
        )
    )
    with pytest.raises(NotFound):
        ln.upload_metadata_by_unique_name(str(bad))
    assert "weather" not in ln.get_file_details("birds_c.png")["metadata"]  # nothing written
    ln.upload_metadata_for_collection("birds", "image", {"site": "north", "Tags": ["all"]})
    assert ln.get_item_count_from_metalake("image", 'metadata.site="north" AND tag=all') == {
        "isSuccess": True,
        "itemCount": 3,
    }
    with pytest.raises(BadRequest, match="names no place"):  # a.png: where?
        ln.upload_metadata_by_storage_path(str(good))


def test_layernext_annotation_json_by_collection_by_unique_name_and_removed(
    ln: Any, birds: dict[str, Any], tmp_path: Path
) -> None:
    cid = birds["collection_id"]
    document = tmp_path / "ann.json"
    document.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "image": "a.png",
                        "annotations": [
                            {"type": "rectangle", "bbox": [1, 2, 5, 6], "label": "Bird"},
                            {
                                "type": "polygon",
                                "polygon": [[1, 1], [8, 1], [4, 8]],
                                "label": "Wing",
                                "attributes": {"colour": [{"value": "red"}]},
                            },
                        ],
                    }
                ]
            }
        )
    )
    report = ln.upload_annotations_for_collection("birds", "gt-1", str(document), False, False)
    assert (report["written"], report["matched_images"]) == (2, 1)
    stored = ln.client.list_annotations("birds_a.png")
    assert {(a.label, a.shape, a.source) for a in stored} == {
        ("Bird", "box", "human"),
        ("Wing", "polygon", "human"),
    }
    box = next(a for a in stored if a.shape == "box")
    assert box.geometry == {"x1": 1, "y1": 2, "x2": 6, "y2": 8}
    wing = next(a for a in stored if a.shape == "polygon")
    assert wing.metadata["attributes"] == {"colour": [{"value": "red"}]}

    by_name = tmp_path / "by_name.json"
    by_name.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "image": "birds_b.png",
                        "annotations": [
                            {"type": "rectangle", "bbox": [0.1, 0.1, 0.5, 0.5], "label": "Nest"}
                        ],
                    },
                    {"image": "birds_nope.png", "annotations": []},
                ]
            }
        )
    )
    report = ln.upload_annotations_by_unique_name("run-1", str(by_name), True, True)
    assert (report["written"], report["unknown_images"]) == (1, ["birds_nope.png"])
    (nest,) = ln.client.list_annotations("birds_b.png")
    assert (nest.label, nest.source, nest.geometry["x2"]) == ("Nest", "machine", 38.4)

    assert (
        ln.get_item_count_from_collection(cid, "", {"annotation_types": ["machine"]})["itemCount"]
        == 1
    )
    assert ln.remove_annotations(str(cid), "run-1") == {"is_success": True, "removed": 1}
    assert ln.client.list_annotations("birds_b.png") == []
    with pytest.raises(NotFound, match="no annotations of operation"):
        ln.remove_annotations(str(cid), "run-1")

    line = tmp_path / "line.json"
    line.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "image": "a.png",
                        "annotations": [{"type": "line", "line": [[1, 1], [5, 5]], "label": "L"}],
                    }
                ]
            }
        )
    )
    with pytest.raises(NotSupportedYet, match="line"):
        ln.upload_annotations_for_collection("birds", "gt-2", str(line), False, False)


def test_downloads_keep_the_asked_annotations(
    ln: Any, birds: dict[str, Any], tmp_path: Path
) -> None:
    cid = birds["collection_id"]
    ln.client.add_annotations(
        "birds_a.png",
        [{"label": "Bird", "shape": "box", "geometry": {"x1": 1, "y1": 1, "x2": 4, "y2": 4}}],
    )
    ln.client.add_annotations(
        "birds_b.png",
        [
            {
                "label": "Nest",
                "shape": "box",
                "source": "machine",
                "confidence": 0.9,
                "geometry": {"x1": 1, "y1": 1, "x2": 4, "y2": 4},
            }
        ],
    )
    out = tmp_path / "human"
    result = ln.download_collection(str(cid), "human", [], str(out), False)
    assert result["annotations"] == 1
    document = json.loads((out / "annotations.json").read_text())
    assert [a["label"] for i in document["images"] for a in i["annotations"]] == ["Bird"]
    assert not (out / "images").exists()

    files = ln.download_files_from_collection(
        str(cid), str(tmp_path / "files"), 0, 2, "", {}, {"sort_by_field": "size"}
    )
    assert files["file_count"] == 2
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [
        "birds_a.png",
        "birds_c.png",
    ]
    url = ln.get_downloadable_url("birds_a.png")
    assert httpx.get(url).content == (tmp_path / "files" / "birds_a.png").read_bytes()


def test_embeddings_take_layernext_batch_of_100(ln: Any, tmp_path: Path) -> None:
    folder = _images(tmp_path / "many", {f"{i:03d}.png": 8 for i in range(100)})
    ln.upload_files_to_collection(str(folder), "image", "many")
    entries = [
        {"uniqueName": f"many_{i:03d}.png", "embeddings": [float(i), 1.0, 0.0]} for i in range(100)
    ]
    result = ln.insert_image_embeddings_batch(entries, "ext", [3], "")
    assert (result["success"], result["upsert_count"]) == (True, 100)
    assert ln.client.get_job(result["job_id"])["total"] == 100  # one job for the batch
    with pytest.raises(BadRequest, match="at most 100"):
        ln.insert_image_embeddings_batch([*entries, entries[0]], "ext", [3], "")
    (vector,) = ln.get_embedding_vector(["many_007.png"], "ext")
    assert vector == {"uniqueName": "many_007.png", "embeddings": [7.0, 1.0, 0.0]}


def test_a_bare_file_name_finds_its_file_in_a_subfolder(ln: Any, tmp_path: Path) -> None:
    folder = tmp_path / "nests"
    _images(folder / "north", {"a.png": 16, "c.png": 16})
    _images(folder / "south", {"b.png": 16, "c.png": 16})
    _images(folder, {"top.png": 16})
    ln.upload_files_to_collection(str(folder), "image", "nests")
    box = [{"type": "rectangle", "bbox": [1, 1, 4, 4], "label": "Egg"}]
    document = tmp_path / "bare.json"
    names = ["a.png", "b.png", "c.png", "top.png", "nope.png"]
    document.write_text(json.dumps({"images": [{"image": n, "annotations": box} for n in names]}))
    report = ln.upload_annotations_for_collection("nests", "bare-1", str(document), False, False)
    assert report["matched_images"] == 3
    assert report["ambiguous_images"] == ["c.png"]  # two files of that name: not guessed
    assert report["unknown_images"] == ["nope.png"]
    for name in ("nests_north_a.png", "nests_south_b.png", "nests_top.png"):
        assert [a.label for a in ln.client.list_annotations(name)] == ["Egg"]
    for name in ("nests_north_c.png", "nests_south_c.png"):
        assert ln.client.list_annotations(name) == []


def test_a_batch_of_100_wide_vectors_is_one_request(
    ln: Any, session: Any, api_settings: Any
) -> None:
    """LayerNext's largest batch at the widest dimension (4,000), every float written as long
    as JSON writes floats, fits the engine's request limit and lands in one request."""
    import numpy as np

    from tests.fixtures.embedding_factory import make_files

    names = make_files(session, "wide", 100)
    rng = np.random.default_rng(3)
    entries = [
        {"uniqueName": n, "embeddings": [float(v) for v in -rng.random(4000) * 1e-5]} for n in names
    ]
    body = json.dumps({"embedding_list": entries, "model_name": "wide", "vector_dimension": [4000]})
    assert len(body) < api_settings.request_max_bytes  # about 9.7 MB of 16 MiB
    result = ln.insert_image_embeddings_batch(entries, "wide", [4000], "wide-session")
    assert (result["success"], result["upsert_count"]) == (True, 100)
    job = ln.client.get_job(result["job_id"])
    assert job["total"] == 100
    (vector,) = ln.get_embedding_vector([names[42]], "wide")
    assert np.allclose(vector["embeddings"], entries[42]["embeddings"], rtol=1e-2, atol=1e-7)
    # similar items spell the name as items and vectors do (and as before)
    similar = ln.client.get_similar_items(names[42], model_name="wide", k=3)
    assert len(similar) == 3
    assert all(item["uniqueName"] == item["unique_name"] in names for item in similar)


def test_ids_and_refusals_say_what_is_wrong(ln: Any, birds: dict[str, Any]) -> None:
    with pytest.raises(BadRequest, match=r"24 hex digits.*integers"):
        ln.get_item_count_from_collection("64f962e14f228f79e7806de6")
    with pytest.raises(NotFound, match="No image collection is named 'nope'"):
        ln.get_collection_id_by_name("nope")
    with pytest.raises(NotSupportedYet, match="storage_prefix_path"):
        ln.upload_files_to_collection("/x", "image", "birds", {}, False, None, "prefix/")
    with pytest.raises(BadRequest, match="not a job of this engine"):
        ln.wait_for_job_complete("abc")
    assert ln.create_or_update_collection("birds", "image") == {
        "is_success": True,
        "collection_id": birds["collection_id"],
    }
    with pytest.raises(BadRequest, match="holds images, not videos"):
        ln.create_or_update_collection("birds", "video")


def test_native_client_accepts_layernext_spellings(
    client: Any, ln: Any, birds: dict[str, Any]
) -> None:
    cid = birds["collection_id"]
    # filters= reaches the engine, which checks it
    with pytest.raises(BadRequest, match="annotation_types"):
        client.auto_tag_collection(cid, filters={"annotation_types": ["bogus"]})
    with pytest.raises(BadRequest, match="annotation_types"):
        client.generate_embeddings_to_metalake(
            item_type="image", filters={"annotation_types": ["bogus"]}
        )
    with pytest.raises(BadRequest, match="two spellings of one argument"):
        client.generate_embeddings_for_collection(cid, filter={}, filters={"x": 1})
    with pytest.raises(BadRequest, match="two spellings of one argument"):
        client.register_model("a", "m", "embedding", task="auto_tagging")
    # content_type= on the lake calls, item_type= on the jobs
    assert client.get_item_list_from_datalake(content_type="video") == []
    assert len(client.get_item_list_from_datalake(content_type="image")) == 3
    assert len(list(client.iter_items(content_type="image"))) == 3
    with pytest.raises(BadRequest, match="does not exist"):
        client.register_model(input_model_path="/no/such/bundle", model_id="m", task="embedding")


def test_label_registry_as_layernext_scripts_use_it(ln: Any, api_url: str) -> None:
    bird = ln.create_system_label(
        {
            "className": "Bird",
            "description": "any bird",
            "attributes": [{"attributeName": "colour", "values": [{"valueName": "red"}]}],
        }
    )
    nest = ln.create_system_label({"className": "Nest"})
    assert ln.create_system_label({"className": "Bird"})["label_reference"] == bird["id"]
    assert bird["attributes"] == [{"name": "colour", "values": ["red"]}]
    group = ln.create_label_group("birds", [bird["label_reference"]])
    assert (group["labels"], group["label_ids"]) == (["Bird"], [bird["id"]])
    both = ln.attach_labels_to_group(group["id"], [str(nest["id"]), bird["id"]])
    assert both["labels"] == ["Bird", "Nest"]
    assert [g["name"] for g in ln.get_all_label_groups()] == ["birds"]
    assert [x["name"] for x in ln.get_labels_in_group(group["id"])] == ["Bird", "Nest"]
    assert ln.detach_labels_from_group(group["id"], [nest["id"]])["labels"] == ["Bird"]
    labels = {x["name"]: x for x in ln.get_all_labels()}
    assert (labels["Bird"]["groups"], labels["Nest"]["groups"]) == (["birds"], [])
    assert labels["Bird"]["description"] == "any bird"

    with pytest.raises(Conflict, match="A label group is named 'birds'"):
        ln.create_label_group("birds", [bird["id"]])
    with pytest.raises(NotFound, match=r"No label has id\(s\) \[999999\]"):
        ln.attach_labels_to_group(group["id"], [999999])
    with pytest.raises(NotFound, match="No label group has id 999999"):
        ln.get_labels_in_group(999999)
    with pytest.raises(BadRequest, match="className"):
        ln.create_system_label({"description": "no name"})
    with pytest.raises(BadRequest, match="not an id of this engine"):
        ln.attach_labels_to_group(group["id"], ["64f962e14f228f79e7806de6"])


def test_uploads_by_storage_path_find_files_where_they_are(
    ln: Any, birds: dict[str, Any], tmp_path: Path
) -> None:
    a, b = tmp_path / "birds" / "a.png", tmp_path / "birds" / "b.png"
    meta = tmp_path / "meta.json"
    meta.write_text(
        json.dumps({"files": [{"file": str(a), "metadata": {"shelf": "3", "Tags": ["stored"]}}]})
    )
    assert ln.upload_metadata_by_storage_path(str(meta))["files"] == 1
    assert ln.get_file_details("birds_a.png", {"shelf": True, "Tags": True}) == {
        "shelf": "3",
        "Tags": ["2024", "field", "stored"],
    }
    document = tmp_path / "ann.json"
    document.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "image": b.as_uri(),
                        "annotations": [
                            {"type": "rectangle", "bbox": [1, 1, 4, 4], "label": "Egg"}
                        ],
                    },
                    {"image": str(tmp_path / "nowhere.png"), "annotations": []},
                ]
            }
        )
    )
    report = ln.upload_annotations_by_storage_path("shelf-1", str(document), False, False)
    assert (report["written"], report["unknown_images"]) == (1, [str(tmp_path / "nowhere.png")])
    assert [x.label for x in ln.client.list_annotations("birds_b.png")] == ["Egg"]

    missing = tmp_path / "missing.json"
    missing.write_text(
        json.dumps(
            {
                "files": [
                    {"file": str(b), "metadata": {"shelf": "9"}},
                    {"file": str(tmp_path / "nowhere.png"), "metadata": {"shelf": "9"}},
                ]
            }
        )
    )
    with pytest.raises(NotFound, match="nothing was written"):
        ln.upload_metadata_by_storage_path(str(missing))
    assert "shelf" not in ln.get_file_details("birds_b.png")["metadata"]
    relative = tmp_path / "relative.json"
    relative.write_text(json.dumps({"files": [{"file": "a.png", "metadata": {}}]}))
    with pytest.raises(BadRequest, match="give bucket_name"):
        ln.upload_metadata_by_storage_path(str(relative))
