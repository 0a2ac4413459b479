"""Autotagging end to end: real API, real Celery worker subprocess, real Postgres and Redis,
the shapes detector bundle (trained by the suite) registered through the SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Annotation, File, Tag
from tests.fixtures.payloads import iou
from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

SCALE = 2  # images are stored at 320x320; the job resizes to 160x160 and must scale back


def _write(folder: Path, start: int, count: int) -> dict[str, dict[str, Any]]:
    folder.mkdir(parents=True)
    truth = {}
    for index in range(start, start + count):
        s = scene(index, seed=7)
        name = f"img{index:03d}.png"
        s.image.resize((160 * SCALE, 160 * SCALE), Image.Resampling.NEAREST).save(folder / name)
        truth[name] = {
            "labels": {sh.label for sh in s.shapes},
            "boxes": [(sh.label, [v * SCALE for v in sh.box]) for sh in s.shapes],
        }
    return truth


@pytest.fixture
def lake(client: Any, tmp_path: Path, session: Session) -> dict[str, Any]:
    """60 images in collection `shapes`: 44 with metadata split=a, 16 with split=b; two of
    the split=a images carry a human annotation (so filter raw excludes them)."""
    truth = _write(tmp_path / "a", 0, 44)
    truth |= _write(tmp_path / "b", 44, 16)
    cid = client.upload_files_to_collection(tmp_path / "a", "image", "shapes", {"split": "a"})
    client.upload_files_to_collection(tmp_path / "b", "image", "shapes", {"split": "b"})
    human = ["shapes_img000.png", "shapes_img001.png"]
    for name in human:
        client.add_annotations(
            name,
            [{"label": "square", "shape": "box", "geometry": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}}],
        )
    expected = {f"shapes_img{i:03d}.png" for i in range(2, 44)}
    return {"cid": cid, "truth": truth, "expected": expected, "human": human}


def _tags(session: Session) -> dict[str, dict[str, Tag]]:
    session.expire_all()
    rows = session.execute(
        select(File.unique_name, Tag)
        .join(Tag, Tag.file_id == File.id)
        .where(Tag.source == "machine")
    )
    out: dict[str, dict[str, Tag]] = {}
    for name, tag in rows:
        out.setdefault(name, {})[tag.name] = tag
    return out


def test_autotag_selects_subset_and_matches_truth(
    client: Any,
    worker: Any,
    lake: dict[str, Any],
    session: Session,
    shapes_detector_bundle: Path,
) -> None:
    client.register_model(shapes_detector_bundle, "shapes_yolo", "autotagging")
    # The seed's example form, positional.
    job = client.auto_tag_collection(
        lake["cid"],
        "shapes_yolo",
        (160, 160),
        0.5,
        'metadata.split="a"',
        {"annotation_types": ["raw"], "from_date": "2020-01-01", "to_date": "2100-01-01"},
        "local",
    )
    assert set(job) == {"job_id", "status", "total"}
    assert job["status"] == "queued"
    assert job["total"] == len(lake["expected"])  # counted at submission, the subset only
    final = client.wait_for_job(job["job_id"], timeout=240, progress=False)
    assert final["status"] == "succeeded", final
    assert final["total"] == final["done"] == len(lake["expected"])

    tags = _tags(session)
    assert set(tags) <= lake["expected"]
    tp = predicted = actual = 0
    for name in lake["expected"]:
        truth = lake["truth"][name.removeprefix("shapes_")]["labels"]
        got = set(tags.get(name, {}))
        tp += len(truth & got)
        predicted += len(got)
        actual += len(truth)
    precision, recall = tp / predicted, tp / actual
    print(f"autotag precision {precision:.3f} recall {recall:.3f} on {len(lake['expected'])}")
    assert precision >= 0.9
    assert recall >= 0.9

    # Boxes are in the original (320x320) pixel space.
    file_id = session.scalar(select(File.id).where(File.unique_name == "shapes_img002.png"))
    boxes = list(
        session.scalars(
            select(Annotation).where(Annotation.file_id == file_id, Annotation.source == "machine")
        )
    )
    assert boxes
    assert all(b.job_id == job["job_id"] for b in boxes)
    truth_boxes = lake["truth"]["img002.png"]["boxes"]
    for box in boxes:
        g = box.geometry
        best = max(iou([g["x1"], g["y1"], g["x2"], g["y2"]], t) for _, t in truth_boxes)
        assert best > 0.7, (g, truth_boxes)

    # Re-running the same version replaces its results (no duplicates); other versions' and
    # human tags stay.
    client.add_tags("shapes_img002.png", ["keep-me"])
    # (the first run's machine boxes make those files `machine`, no longer `raw`)
    again = client.auto_tag_collection(
        lake["cid"],
        "shapes_yolo",
        (160, 160),
        0.5,
        'metadata.split="a"',
        {"annotation_types": ["raw", "machine"]},
        "local",
    )
    rerun = client.wait_for_job(again["job_id"], timeout=240, progress=False)
    assert rerun["status"] == "succeeded"
    assert rerun["done"] == len(lake["expected"])
    session.expire_all()
    tags2 = _tags(session)
    assert {n: set(t) for n, t in tags2.items()} == {n: set(t) for n, t in tags.items()}
    assert all(t.job_id == again["job_id"] for ts in tags2.values() for t in ts.values())
    assert {
        b.job_id
        for b in session.scalars(
            select(Annotation).where(Annotation.file_id == file_id, Annotation.source == "machine")
        )
    } == {again["job_id"]}
    names = {t.name for t in session.scalars(select(Tag).where(Tag.file_id == file_id))}
    assert "keep-me" in names
