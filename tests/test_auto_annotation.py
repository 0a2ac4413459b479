"""Auto-annotation end to end: real API, real Celery worker subprocess, Postgres and Redis,
and a prompt-driven bundle (tests/bundles/shapes_prompt_seg) running the suite's trained
shapes YOLOv8n-seg. Prompts map phrases back to labels; `preview` proposes annotations that
are accepted by job or rejected by item."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Annotation, File
from sdk.errors import BadRequest, NotFound
from tests.fixtures.models import TrainedModel
from tests.fixtures.payloads import iou
from tests.fixtures.plugin import shapes_segmenter  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

BUNDLE = Path(__file__).parent / "bundles" / "shapes_prompt_seg"
SCALE = 2  # stored at 320x320; the job sends 640x640 and must scale back
PROMPT: list[Any] = [{"label": "ball", "description": "a circle"}, "square"]
TRUTH_LABEL = {"ball": "circle", "square": "square"}


@pytest.fixture
def prompt_bundle(tmp_path: Path, shapes_segmenter: TrainedModel) -> Path:
    bundle = tmp_path / "shapes_prompt_seg"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(shapes_segmenter.weights, bundle / "shapes-seg.pt")
    return bundle


@pytest.fixture
def lake(client: Any, tmp_path: Path, prompt_bundle: Path) -> dict[str, Any]:
    folder = tmp_path / "scenes"
    folder.mkdir()
    truth: dict[str, list[tuple[str, list[float]]]] = {}
    for index in range(20):
        s = scene(index, seed=11)
        s.image.resize((160 * SCALE, 160 * SCALE), Image.Resampling.NEAREST).save(
            folder / f"s{index:02d}.png"
        )
        truth[f"ann_s{index:02d}.png"] = [
            (sh.label, [v * SCALE for v in sh.box]) for sh in s.shapes
        ]
    cid = client.upload_files_to_collection(folder, "image", "ann")
    client.register_model(prompt_bundle, "shapes_prompt", "auto_annotation")
    return {"cid": cid, "truth": truth}


def _machine(session: Session, job_id: int | None = None) -> list[tuple[str, Annotation]]:
    session.expire_all()
    query = (
        select(File.unique_name, Annotation)
        .join(File, File.id == Annotation.file_id)
        .where(Annotation.source == "machine")
    )
    if job_id is not None:
        query = query.where(Annotation.job_id == job_id)
    return [(name, a) for name, a in session.execute(query)]


def _bbox(annotation: Annotation) -> list[float]:
    g = annotation.geometry
    if annotation.shape == "box":
        return [g["x1"], g["y1"], g["x2"], g["y2"]]
    xs, ys = [p[0] for p in g["points"]], [p[1] for p in g["points"]]
    return [min(xs), min(ys), max(xs), max(ys)]


def _check_geometry(rows: list[tuple[str, Annotation]], truth: dict[str, Any]) -> None:
    """Most annotations overlap a truth shape of their label (in 320x320 pixels)."""
    good = 0
    for name, a in rows:
        assert a.label in TRUTH_LABEL, a.label  # triangles were not prompted
        box = _bbox(a)
        assert all(0 <= v <= 160 * SCALE for v in box), box
        same = [t for label, t in truth[name] if label == TRUTH_LABEL[a.label]]
        good += max((iou(box, t) for t in same), default=0.0) >= 0.5
    assert good >= 0.8 * len(rows), (good, len(rows))
    # recall: most prompted truth shapes got an annotation
    prompted = sum(
        1 for shapes in truth.values() for label, _ in shapes if label in TRUTH_LABEL.values()
    )
    assert len(rows) >= 0.7 * prompted, (len(rows), prompted)


def test_auto_annotate_polygons_then_boxes(
    client: Any, worker: Any, lake: dict[str, Any], session: Session
) -> None:
    job = client.auto_annotate_collection(
        lake["cid"], "shapes_prompt", PROMPT, "polygon", 0.5, None, None, "local"
    )
    assert set(job) == {"job_id", "status", "total"}
    final = client.wait_for_job(job["job_id"], timeout=120, progress=False)
    assert final["status"] == "succeeded", final
    assert final["done"] == 20

    rows = _machine(session)
    assert rows
    assert {a.label for _, a in rows} == {"ball", "square"}
    assert all(a.shape == "polygon" and len(a.geometry["points"]) >= 3 for _, a in rows)
    assert all(a.status == "applied" and a.job_id == job["job_id"] for _, a in rows)
    assert all(a.frame_index is None and 0.5 <= (a.confidence or 0) <= 1 for _, a in rows)
    _check_geometry(rows, lake["truth"])
    # applied machine annotations are what `annotation.label=` sees
    balls = {
        i["uniqueName"]
        for i in client.get_item_list_from_collection(
            lake["cid"], "annotation.label=ball", page_size=100
        )
    }
    assert balls == {name for name, a in rows if a.label == "ball"}

    boxes = client.auto_annotate_collection(
        lake["cid"], "shapes_prompt", PROMPT, "box", 0.5, None, None, "local"
    )
    assert (
        client.wait_for_job(boxes["job_id"], timeout=120, progress=False)["status"] == "succeeded"
    )
    rows = _machine(session)  # the rerun of the same version replaced the polygons
    assert rows
    assert all(a.shape == "box" and a.job_id == boxes["job_id"] for _, a in rows)
    _check_geometry(rows, lake["truth"])


def test_preview_accept_by_job_and_reject_by_item(
    client: Any, worker: Any, lake: dict[str, Any], session: Session
) -> None:
    cid = lake["cid"]
    first = client.auto_annotate_collection(
        cid, "shapes_prompt", PROMPT, "box", 0.5, preview=True, inference_platform="local"
    )
    assert (
        client.wait_for_job(first["job_id"], timeout=120, progress=False)["status"] == "succeeded"
    )
    proposed = _machine(session, first["job_id"])
    assert proposed
    assert all(a.status == "proposed" for _, a in proposed)
    assert client.get_item_list_from_collection(cid, "annotation.label=ball") == []
    assert client.get_item_list_from_collection(cid, "annotation.label=square") == []

    report = client.accept_proposals(first["job_id"])
    assert report["annotations"] == len(proposed)
    applied = _machine(session, first["job_id"])
    assert {a.id for _, a in applied} == {a.id for _, a in proposed}
    assert all(a.status == "applied" for _, a in applied)
    squares = {
        i["uniqueName"]
        for i in client.get_item_list_from_collection(cid, "annotation.label=square", page_size=100)
    }
    assert squares == {name for name, a in applied if a.label == "square"}

    second = client.auto_annotate_collection(
        cid, "shapes_prompt", PROMPT, "polygon", 0.5, preview=True, inference_platform="local"
    )
    assert (
        client.wait_for_job(second["job_id"], timeout=120, progress=False)["status"] == "succeeded"
    )
    new = _machine(session, second["job_id"])
    assert new
    assert all(a.status == "proposed" for _, a in new)
    # a preview rerun of the same version leaves the accepted annotations alone
    assert {a.id for _, a in _machine(session, first["job_id"])} == {a.id for _, a in applied}
    names = sorted({name for name, _ in new})
    rejected, kept = names[:3], names[3:]
    report = client.reject_proposals(second["job_id"], rejected)
    assert report["annotations"] == sum(1 for name, _ in new if name in rejected)
    left = _machine(session, second["job_id"])
    assert {name for name, _ in left} == set(kept)
    assert all(a.status == "proposed" for _, a in left)
    # still invisible to queries: only the accepted first job's annotations count
    assert {
        i["uniqueName"]
        for i in client.get_item_list_from_collection(cid, "annotation.label=square", page_size=100)
    } == squares
    # the others can still be accepted by item
    report = client.accept_proposals(second["job_id"], kept[:1])
    assert report["annotations"] == sum(1 for name, _ in new if name == kept[0])


def test_auto_annotate_validation(client: Any, lake: dict[str, Any]) -> None:
    cid = lake["cid"]
    with pytest.raises(BadRequest):
        client.auto_annotate_collection(cid, "shapes_prompt", PROMPT, "mask")
    with pytest.raises(BadRequest):
        client.auto_annotate_collection(cid, "shapes_prompt", ["  "])
    with pytest.raises(BadRequest):
        client.auto_annotate_collection(cid, "shapes_prompt", PROMPT, "box", 2.0)
    with pytest.raises(BadRequest) as platform:
        client.auto_annotate_collection(cid, "shapes_prompt", PROMPT, "box", 0.5, None, None, "gcp")
    assert platform.value.code == "unknown_platform"
    with pytest.raises(NotFound):
        client.auto_annotate_collection(cid, "no_such_model", PROMPT)
    # no prompt: the model's own label list; queued, not run (no worker here)
    job = client.generate_auto_annotations_to_metalake("image", "shapes_prompt")
    assert job["status"] == "queued"
    assert client.get_job(job["job_id"])["params"]["prompt"] == [
        {"label": name, "description": name} for name in ("circle", "square", "triangle")
    ]
    with pytest.raises(NotFound):
        client.accept_proposals(424242)
