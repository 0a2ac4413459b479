"""Autotagging videos end to end (real API, worker subprocess, Postgres, Redis): frames are
sampled every `video_frame_stride` frames, annotations carry the frame index, and a video is
tagged with the union of its frames' tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import Annotation, File, Tag
from tests.fixtures.payloads import iou
from tests.fixtures.plugin import (  # noqa: F401
    shapes_detector,
    shapes_detector_bundle,
    shapes_segmenter,
)
from tests.fixtures.services import MotoServer
from tests.fixtures.shapes import outline
from tests.fixtures.worker import _redis_db, shared_envs_dir, worker  # noqa: F401
from tests.test_auto_annotation import prompt_bundle  # noqa: F401

SIZE = 320  # frames are 320x320; the job resizes them to 160x160 and must scale back
FRAMES = 30
STRIDE = 5
SAMPLED = list(range(0, FRAMES, STRIDE))


@pytest.fixture
def settings(
    database_url: str, redis_url: str, moto: MotoServer, tmp_path: Path, shared_envs_dir: Path
) -> Settings:
    """tests/worker.py's settings with a small frame stride (the worker gets it too)."""
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url=_redis_db(redis_url),
        s3_endpoint_url=moto.url,
        envs_dir=shared_envs_dir,
        chunk_size=8,
        video_frame_stride=STRIDE,
    )


def _frame(label: str, box: tuple[float, float, float, float]) -> np.ndarray:
    image = Image.new("RGB", (SIZE, SIZE), (30, 40, 60))
    ImageDraw.Draw(image).polygon(list(outline(label, box)), fill=(240, 220, 40))
    return np.asarray(image)[:, :, ::-1].copy()  # BGR for OpenCV


def _write_video(path: Path, shapes: list[tuple[str, tuple[float, float, float, float]]]) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    assert writer.isOpened()
    for index in range(FRAMES):
        label, box = shapes[index]
        writer.write(_frame(label, box))
    writer.release()


def _moving(label: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """`label`, 80 px wide, moving left to right."""
    out = []
    for index in range(FRAMES):
        x = 20 + index * 6
        out.append((label, (float(x), 120.0, float(x + 80), 200.0)))
    return out


def test_autotag_videos_frame_index_and_union_of_tags(
    client: Any,
    worker: Any,
    session: Session,
    tmp_path: Path,
    shapes_detector_bundle: Path,
    prompt_bundle: Path,
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    _write_video(folder / "moving.mp4", _moving("triangle"))
    # a circle for the first half, then a square elsewhere in the frame
    switch = [("circle", (40.0, 40.0, 130.0, 130.0))] * (FRAMES // 2) + [
        ("square", (180.0, 170.0, 270.0, 260.0))
    ] * (FRAMES - FRAMES // 2)
    _write_video(folder / "switch.mp4", switch)
    cid = client.upload_files_to_collection(folder, "video", "clips")
    client.register_model(shapes_detector_bundle, "shapes_yolo", "autotagging")

    job = client.auto_tag_collection(cid, "shapes_yolo", (160, 160), 0.5, None, None, "local")
    final = client.wait_for_job(job["job_id"], timeout=120, progress=False)
    assert final["status"] == "succeeded", final
    assert (final["total"], final["done"]) == (2, 2)

    session.expire_all()
    ids = {name: id_ for name, id_ in session.execute(select(File.unique_name, File.id))}
    moving, switching = ids["clips_moving.mp4"], ids["clips_switch.mp4"]
    tags: dict[int, set[str]] = {}
    for file_id, name in session.execute(
        select(Tag.file_id, Tag.name).where(Tag.source == "machine")
    ):
        tags.setdefault(file_id, set()).add(name)
    assert tags == {moving: {"triangle"}, switching: {"circle", "square"}}

    boxes = list(session.scalars(select(Annotation).where(Annotation.source == "machine")))
    assert all(a.frame_index in SAMPLED for a in boxes), {a.frame_index for a in boxes}
    truth = {moving: _moving("triangle"), switching: switch}
    for a in boxes:
        label, box = truth[a.file_id][a.frame_index]
        assert a.label == label, (a.file_id, a.frame_index, a.label)
        g = a.geometry
        assert iou([g["x1"], g["y1"], g["x2"], g["y2"]], list(box)) > 0.6, (g, box)
    # every sampled frame was looked at: most have their shape found
    for file_id in (moving, switching):
        seen = {a.frame_index for a in boxes if a.file_id == file_id}
        assert len(seen) >= len(SAMPLED) - 1, (file_id, sorted(seen))
    # the machine tag's confidence is the best over the video's frames
    best = max(a.confidence or 0 for a in boxes if a.file_id == switching and a.label == "square")
    tag = session.scalar(select(Tag).where(Tag.file_id == switching, Tag.name == "square"))
    assert tag is not None
    assert tag.confidence == pytest.approx(best)
    # the query sees the union too
    found = {i["uniqueName"] for i in client.get_item_list_from_collection(cid, "tag=circle")}
    assert found == {"clips_switch.mp4"}

    # auto-annotation of the lake's videos: polygons per sampled frame, prompted labels only
    client.register_model(prompt_bundle, "shapes_prompt", "auto_annotation")
    job = client.generate_auto_annotations_to_metalake(
        "video", "shapes_prompt", ["circle", "square"], "polygon", 0.5, None, None, "local"
    )
    final = client.wait_for_job(job["job_id"], timeout=120, progress=False)
    assert final["status"] == "succeeded", final
    session.expire_all()
    polygons = list(session.scalars(select(Annotation).where(Annotation.job_id == job["job_id"])))
    assert {a.file_id for a in polygons} == {switching}  # the triangle was not prompted
    assert all(a.shape == "polygon" and a.status == "applied" for a in polygons)
    for a in polygons:
        assert a.frame_index in SAMPLED
        label, box = switch[a.frame_index]
        assert a.label == label, (a.frame_index, a.label)
        xs = [p[0] for p in a.geometry["points"]]
        ys = [p[1] for p in a.geometry["points"]]
        assert iou([min(xs), min(ys), max(xs), max(ys)], list(box)) > 0.6
    assert len({a.frame_index for a in polygons}) >= len(SAMPLED) - 1
    # the autotagging version's results are untouched
    session.expire_all()
    assert {name for name in session.scalars(select(Tag.name).where(Tag.file_id == switching))} == {
        "circle",
        "square",
    }
