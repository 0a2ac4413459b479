"""Datasets: versions as frozen, deterministically split snapshots, and their download."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from engine.errors import InvalidSplit
from engine.interop.datasets import split_counts
from sdk import BadRequest, Client, Conflict, NotFound
from tests.test_annotations_factories import LakeImage, make_collection

NAMES = [f"img{i:02d}.jpg" for i in range(10)]


@pytest.fixture
def lake(session: Session, tmp_path: Path) -> tuple[int, dict[str, LakeImage]]:
    """`shapes`: ten images; img00..img07 have a human Cat box, img00 also a Dog."""
    collection_id, images = make_collection(
        session, tmp_path / "shapes", "shapes", {name: (32, 24) for name in NAMES}
    )
    rows = [_box(images[name].file_id, "Cat") for name in NAMES[:8]]
    rows.append(_box(images["img00.jpg"].file_id, "Dog"))
    session.execute(insert(Annotation), rows)
    session.commit()
    return collection_id, images


def _box(file_id: int, label: str) -> dict[str, object]:
    return {
        "file_id": file_id,
        "label": label,
        "shape": "box",
        "geometry": {"x1": 1, "y1": 1, "x2": 10, "y2": 10},
        "source": "human",
        "status": "applied",
    }


def test_split_counts_tell_percentages_from_counts() -> None:
    assert split_counts({"train": 70, "validation": 20, "test": 10}, "auto", 10) == {
        "train": 7,
        "validation": 2,
        "test": 1,
    }
    # 1/3 each of 10 files: the remainder goes to the largest fractions, all files are used
    assert sum(split_counts({"train": 50, "validation": 25, "test": 25}, "auto", 7).values()) == 7
    assert split_counts({"train": 3, "validation": 2}, "auto", 10) == {
        "train": 3,
        "validation": 2,
        "test": 0,
    }
    assert split_counts({"train": 60, "test": 40}, "count", 100) == {
        "train": 60,
        "validation": 0,
        "test": 40,
    }
    with pytest.raises(InvalidSplit, match="holds 10"):
        split_counts({"train": 8, "test": 8}, "auto", 10)
    with pytest.raises(InvalidSplit, match="whole numbers"):
        split_counts({"train": 2.5}, "auto", 10)
    with pytest.raises(InvalidSplit, match="keys"):
        split_counts({"training": 100}, "auto", 10)
    with pytest.raises(InvalidSplit, match="add up to 100"):
        split_counts({"train": 50}, "percent", 10)


def _expected_order(images: dict[str, LakeImage]) -> list[str]:
    return sorted(
        images, key=lambda n: (hashlib.md5(images[n].unique_name.encode()).hexdigest(), n)
    )


def test_percentages_split_deterministically_by_name_hash(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    made = client.create_dataset_from_collection(
        "pets", collection_id, {"train": 70, "validation": 20, "test": 10}
    )
    assert made["isSuccess"] is True
    assert (made["version"], made["items"], made["annotations"]) == (1, 10, 9)
    assert made["splits"] == {"train": 7, "validation": 2, "test": 1}

    again = client.update_dataset_version_from_collection(
        made["version_id"], collection_id, {"train": 70, "validation": 20, "test": 10}
    )
    assert (again["dataset_id"], again["version"]) == (made["dataset_id"], 2)

    splits = []
    for version in (made, again):
        out = tmp_path / f"v{version['version']}"
        client.download_dataset(version["version_id"], "metalake_json", out, False)
        document = json.loads((out / "annotations.json").read_text())
        splits.append({i["image"]: i["split"] for i in document["images"]})
    assert splits[0] == splits[1]
    order = _expected_order(images)
    assert splits[0] == {
        **{name: "train" for name in order[:7]},
        **{name: "validation" for name in order[7:9]},
        order[9]: "test",
    }


def test_counts_labels_and_query(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, _ = lake
    made = client.create_dataset_from_collection(
        "dogs-and-cats",
        collection_id,
        {"train": 2, "test": 1},
        labels=["Dog"],
        query="annotation.label = Cat",
    )
    assert made["splits"] == {"train": 2, "validation": 0, "test": 1}
    assert made["labels"] == ["Dog"]
    out = tmp_path / "d"
    client.download_dataset(made["version_id"], "metalake_json", out, False)
    document = json.loads((out / "annotations.json").read_text())
    labels = sorted(a["label"] for i in document["images"] for a in i["annotations"])
    assert labels == (["Dog"] if "img00.jpg" in {i["image"] for i in document["images"]} else [])
    assert made["annotations"] == len(labels)


def test_a_version_is_frozen(
    client: Client, lake: tuple[int, dict[str, LakeImage]], session: Session, tmp_path: Path
) -> None:
    collection_id, images = lake
    made = client.create_dataset_from_collection(
        "frozen", collection_id, {"train": 100, "validation": 0, "test": 0}
    )
    first = images["img00.jpg"].file_id
    session.execute(update(Annotation).where(Annotation.label == "Dog").values(label="Wolf"))
    session.execute(delete(Annotation).where(Annotation.file_id == images["img01.jpg"].file_id))
    session.execute(insert(Annotation), [_box(images["img09.jpg"].file_id, "Bird")])
    session.commit()

    out = tmp_path / "frozen"
    report = client.download_dataset(made["version_id"], "metalake_json", out, True)
    document = json.loads((out / "annotations.json").read_text())
    by_image = {
        i["image"]: sorted(a["label"] for a in i["annotations"]) for i in document["images"]
    }
    assert by_image["img00.jpg"] == ["Cat", "Dog"]
    assert by_image["img01.jpg"] == ["Cat"]
    assert by_image["img09.jpg"] == []
    assert {i["file_id"] for i in document["images"]} >= {first}
    assert report["items"] == 10
    assert sorted(p.name for p in (out / "images").iterdir()) == NAMES


def test_coco_download_is_split_aware(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, _ = lake
    made = client.create_dataset_from_collection(
        "coco", collection_id, {"train": 6, "validation": 2, "test": 2}
    )
    out = tmp_path / "coco"
    client.download_dataset(made["version_id"], "coco", out, True)
    documents = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*.json") if not p.name.startswith(".")
    )
    assert len(documents) == 3, documents
    images = {doc: len(json.loads((out / doc).read_text())["images"]) for doc in documents}
    assert sorted(images.values()) == [2, 2, 6]


def test_datalake_dataset_and_bad_input(
    client: Client, lake: tuple[int, dict[str, LakeImage]]
) -> None:
    made = client.create_dataset_from_datalake("lake", {"train": 5, "test": 5}, item_type="image")
    assert made["items"] == 10
    with pytest.raises(Conflict, match="exists"):
        client.create_dataset_from_datalake("lake", {"train": 100})
    with pytest.raises(BadRequest, match="holds 10"):
        client.create_dataset_from_datalake("big", {"train": 50, "test": 1})
    with pytest.raises(BadRequest) as bad_query:
        client.create_dataset_from_datalake("q", {"train": 100}, query="tag = ")
    assert bad_query.value.code == "invalid_query"
    with pytest.raises(NotFound):
        client.update_dataset_version_from_datalake(999999, {"train": 100})

    client.delete_dataset_version(made["version_id"])
    with pytest.raises(NotFound):
        client.get_dataset_version(made["version_id"])
    again = client.create_dataset_from_datalake("lake", {"train": 100})  # the name is free again
    assert again["version"] == 1


def test_cli_datasets_create_show_download(
    api_url: str, admin_key: str, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    env = {"METALAKE_URL": api_url, "METALAKE_API_KEY": admin_key}
    runner = CliRunner()
    made = runner.invoke(
        app,
        ["datasets", "create", "cli-set", "--collection", "shapes", "--split",
         "train=8,test=2"],
        env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    version = json.loads(made.stdout)
    assert version["splits"] == {"train": 8, "validation": 0, "test": 2}
    shown = runner.invoke(app, ["datasets", "show", str(version["version_id"])], env=env)
    assert json.loads(shown.stdout)["dataset_name"] == "cli-set"
    out = tmp_path / "dl"
    downloaded = runner.invoke(
        app,
        ["datasets", "download", str(version["version_id"]), "--format", "metalake_json",
         "--out", str(out), "--no-media"],
        env=env,
    )  # fmt: skip
    assert downloaded.exit_code == 0, downloaded.output
    splits = [i["split"] for i in json.loads((out / "annotations.json").read_text())["images"]]
    assert sorted(splits) == ["test"] * 2 + ["train"] * 8
    bad = runner.invoke(
        app, ["datasets", "create", "x", "--collection", "shapes", "--split", "train=lots"],
        env=env,
    )  # fmt: skip
    assert bad.exit_code == 2
