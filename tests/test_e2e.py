"""The issue's end-to-end test: real API, real `metalake worker` subprocess, Postgres, Redis.

300 generated shape scenes with known truth are uploaded; the trained shapes detector tags the
subset a query and a filter select (only that subset gets tags; precision and recall against
truth >= 0.9); the random-weights ResNet50 bundle embeds a query-selected subset plus a
near-duplicate (JPEG q85, cropped 4 px a side), which `get_similar_items` finds in the top 3;
and a stored vector equals the bundle's own output for the same request body.

Embedding is limited to the 60 `camera="rear"` scenes plus the duplicate: ResNet50 runs at
~5-10 images/s on the 2-core machine, so all 300 would take most of a minute on their own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import File, Tag
from engine.hosting.contract import NPZ_CONTENT_TYPE, encode_batch
from tests.fixtures.bundles import load_inference, run_request
from tests.fixtures.plugin import (  # noqa: F401
    resnet50_random_bundle,
    resnet50_random_weights,
    shapes_detector,
    shapes_detector_bundle,
)
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

FRONT, REAR = 240, 60  # 300 scenes: autotag the front ones, embed the rear ones
HUMAN = ("e2e_f000.png", "e2e_f001.png")  # annotated by a person: the `raw` filter skips them
ORIGINAL, DUPLICATE = "e2e_r007.png", "e2e_r007_dup.jpg"
EMBED_SIZE = (224, 224)  # the engine's default input_resolution for embedding jobs


def _write(folder: Path, prefix: str, start: int, count: int) -> dict[str, set[str]]:
    folder.mkdir(parents=True)
    truth = {}
    for index in range(start, start + count):
        s = scene(index, seed=11)
        name = f"{prefix}{index - start:03d}.png"
        s.image.save(folder / name)
        truth[f"e2e_{name}"] = {sh.label for sh in s.shapes}
    return truth


def _near_duplicate(source: Path, target: Path) -> None:
    """Cropped 4 px on every side and re-encoded as JPEG quality 85."""
    target.parent.mkdir(parents=True)
    with Image.open(source) as image:
        w, h = image.size
        image.convert("RGB").crop((4, 4, w - 4, h - 4)).save(target, "JPEG", quality=85)


@pytest.fixture
def lake(client: Any, tmp_path: Path) -> dict[str, Any]:
    truth = _write(tmp_path / "front", "f", 0, FRONT)
    truth |= _write(tmp_path / "rear", "r", FRONT, REAR)
    _near_duplicate(
        tmp_path / "rear" / ORIGINAL.removeprefix("e2e_"),
        tmp_path / "dup" / DUPLICATE.removeprefix("e2e_"),
    )
    cid = client.upload_files_to_collection(tmp_path / "front", "image", "e2e", {"camera": "front"})
    assert (
        client.upload_files_to_collection(tmp_path / "rear", "image", "e2e", {"camera": "rear"})
        == cid
    )
    client.upload_files_to_collection(tmp_path / "dup", "image", "e2e", {"camera": "rear"})
    for name in HUMAN:
        client.add_annotations(
            name,
            [{"label": "square", "shape": "box", "geometry": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}}],
        )
    return {"cid": cid, "truth": truth, "dir": tmp_path}


def _machine_tags(session: Session) -> dict[str, set[str]]:
    session.expire_all()
    out: dict[str, set[str]] = {}
    for name, tag in session.execute(
        select(File.unique_name, Tag.name)
        .join(Tag, Tag.file_id == File.id)
        .where(Tag.source == "machine")
    ):
        out.setdefault(name, set()).add(tag)
    return out


def _engine_input(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The file decoded the way engine/jobs/media.py does: EXIF-transposed RGB, resized
    bilinearly to the job's input resolution."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_end_to_end(
    client: Any,
    worker: Any,
    lake: dict[str, Any],
    session: Session,
    shapes_detector_bundle: Path,
    resnet50_random_bundle: Path,
) -> None:
    client.register_model(shapes_detector_bundle, "shapes_yolo", "autotagging")
    client.register_model(resnet50_random_bundle, "resnet_random", "embedding")

    # -- autotagging: the query keeps camera=front, the filter drops the two human-annotated
    # files (not `raw`) -- 238 of the 301 files.
    expected = {n for n in lake["truth"] if n.startswith("e2e_f")} - set(HUMAN)
    started = time.monotonic()
    job = client.auto_tag_collection(
        lake["cid"],
        "shapes_yolo",
        (160, 160),
        0.5,
        'metadata.camera="front"',
        {"annotation_types": ["raw"], "from_date": "2020-01-01", "to_date": "2100-01-01"},
        "local",
    )
    assert set(job) == {"job_id", "status", "total"}  # total is known once planned
    final = client.wait_for_job(job["job_id"], timeout=240, progress=False)
    tag_seconds = time.monotonic() - started
    assert final["status"] == "succeeded", final
    assert final["total"] == final["done"] == len(expected)

    tags = _machine_tags(session)
    assert set(tags) <= expected, sorted(set(tags) - expected)[:10]
    tp = predicted = actual = 0
    for name in expected:
        truth, got = lake["truth"][name], tags.get(name, set())
        tp += len(truth & got)
        predicted += len(got)
        actual += len(truth)
    precision, recall = tp / predicted, tp / actual
    print(
        f"\nautotag: {len(expected)} files in {tag_seconds:.1f} s, "
        f"precision {precision:.3f} recall {recall:.3f}"
    )
    assert precision >= 0.9
    assert recall >= 0.9

    # -- embeddings: the 60 rear scenes and the near-duplicate of one of them.
    started = time.monotonic()
    job = client.generate_embeddings_for_collection(
        lake["cid"], "resnet_random", 'metadata.camera="rear"', None, "local"
    )
    final = client.wait_for_job(job["job_id"], timeout=240, progress=False)
    embed_seconds = time.monotonic() - started
    assert final["status"] == "succeeded", final
    assert final["total"] == final["done"] == REAR + 1

    similar = client.get_similar_items(unique_name=ORIGINAL, model_name="resnet_random", k=3)
    print(f"embed: {REAR + 1} files in {embed_seconds:.1f} s; nearest to {ORIGINAL}: {similar}")
    assert ORIGINAL not in [s["unique_name"] for s in similar]
    assert DUPLICATE in [s["unique_name"] for s in similar]
    assert not client.get_embedding_vector(["e2e_f010.png"], "resnet_random")[0]["embeddings"]

    # -- the stored vector is the bundle's own answer to the request the engine sends.
    [stored] = client.get_embedding_vector([ORIGINAL], "resnet_random")
    module = load_inference(resnet50_random_bundle)
    model = module.model_fn(str(resnet50_random_bundle))
    image = _engine_input(lake["dir"] / "rear" / ORIGINAL.removeprefix("e2e_"), EMBED_SIZE)
    body = encode_batch(
        [image],
        {
            "application": "embedding",
            "confidence_threshold": 0.0,
            "input_resolution": list(EMBED_SIZE),
            "original_sizes": [[160, 160]],
        },
    )
    answer = run_request(module, model, body, NPZ_CONTENT_TYPE)
    direct = np.asarray(answer[0]["embedding"], dtype=np.float64)
    got = np.asarray(stored["embeddings"], dtype=np.float64)
    assert got.shape == direct.shape == (2048,)
    cosine = _cosine(got, direct)
    print(f"stored vs bundle cosine {cosine:.7f}")
    assert cosine >= 0.9999
    # ...and the near-duplicate's vector is the bundle's answer for the JPEG as decoded.
    [dup] = client.get_embedding_vector([DUPLICATE], "resnet_random")
    dup_image = _engine_input(lake["dir"] / "dup" / DUPLICATE.removeprefix("e2e_"), EMBED_SIZE)
    answer = run_request(module, model, encode_batch([dup_image], {}), NPZ_CONTENT_TYPE)
    assert _cosine(np.asarray(dup["embeddings"]), np.asarray(answer[0]["embedding"])) >= 0.9999
