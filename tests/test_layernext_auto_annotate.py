"""LayerNext's `auto_annotate_project` against the real API, a real Celery worker running the
suite's prompt-driven segmenter bundle, and a real Label Studio: the job runs over the
project's lake files only, and its machine annotations become the tasks' predictions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import Annotation, File
from sdk import BadRequest, LayerNextClient, NotFound
from sdk.errors import ValidationFailed
from tests.fixtures.labelstudio import LabelStudio, label_studio  # noqa: F401
from tests.fixtures.models import TrainedModel
from tests.fixtures.plugin import shapes_segmenter  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BUNDLE = Path(__file__).parent / "bundles" / "shapes_prompt_seg"
PROMPT: list[Any] = [{"label": "ball", "description": "a circle"}, "square"]


@pytest.fixture
def api_settings(settings: Settings, label_studio: LabelStudio) -> Settings:
    return settings.model_copy(
        update={"labelstudio_url": label_studio.url, "labelstudio_token": label_studio.token}
    )


@pytest.fixture
def ln(api_url: str, admin_key: str) -> Iterator[Any]:
    with LayerNextClient(admin_key, "", api_url) as client:
        yield client


def _scenes(root: Path, name: str, seeds: range) -> Path:
    folder = root / name
    folder.mkdir()
    for index in seeds:
        s = scene(index, seed=11)
        s.image.resize((320, 320), Image.Resampling.NEAREST).save(folder / f"s{index:02d}.png")
    return folder


def _machine(session: Session, job_id: int) -> list[tuple[str, Annotation]]:
    session.expire_all()
    query = (
        select(File.unique_name, Annotation)
        .join(File, File.id == Annotation.file_id)
        .where(Annotation.source == "machine", Annotation.job_id == job_id)
    )
    return [(name, a) for name, a in session.execute(query)]


def test_auto_annotate_project_predicts_its_tasks(
    ln: Any,
    worker: Any,
    label_studio: LabelStudio,
    session: Session,
    shapes_segmenter: TrainedModel,
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "shapes_prompt_seg"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(shapes_segmenter.weights, bundle / "shapes-seg.pt")
    ln.register_model(str(bundle), "shapes_prompt", "auto_annotation")
    inside = ln.upload_files_to_collection(
        str(_scenes(tmp_path, "inside", range(4))), "image", "inside"
    )
    ln.upload_files_to_collection(
        str(_scenes(tmp_path, "outside", range(4, 8))), "image", "outside"
    )
    # one human box names the project's first label; the rest come from the job
    document = tmp_path / "human.json"
    box = {"type": "rectangle", "bbox": [1, 1, 10, 10], "label": "ball"}
    document.write_text(json.dumps({"images": [{"image": "s00.png", "annotations": [box]}]}))
    ln.upload_annotations_for_collection("inside", "human-1", str(document), False, False)
    made = ln.create_annotation_project_from_collection("auto", str(inside["collection_id"]))
    pid = made["project_id"]
    assert made["task_count"] == 4

    result = ln.auto_annotate_project(
        str(pid), "segment", "shapes_prompt", prompt=PROMPT, inference_platform="local"
    )
    assert set(result) == {"jobId"}
    job_id = result["jobId"]
    job = ln.client.get_job(job_id)
    assert (job["status"], job["total"]) == ("succeeded", 4)

    # the job ran over the project's files only, as polygons
    rows = _machine(session, job_id)
    assert rows
    assert {name for name, _ in rows} <= {f"inside_s{i:02d}.png" for i in range(4)}
    assert {a.label for _, a in rows} <= {"ball", "square"}
    assert all(a.shape == "polygon" for _, a in rows)

    # ... and its annotations are the tasks' predictions
    with label_studio.api() as ls:
        response = ls.get("/api/predictions/", params={"project": pid})
        response.raise_for_status()
        predictions = response.json()
    assert {p["model_version"] for p in predictions} == {f"job-{job_id}"}
    assert len({p["task"] for p in predictions}) == len({name for name, _ in rows})
    regions = [r for p in predictions for r in p["result"]]
    assert len(regions) == len(rows)
    assert {r["type"] for r in regions} == {"polygonlabels"}
    assert {label for r in regions for label in r["value"]["polygonlabels"]} == {
        a.label for _, a in rows
    }

    # bad input is a clear 4xx, before any job runs
    with pytest.raises(BadRequest, match="annotation_type"):
        ln.auto_annotate_project(str(pid), "cuboid", "shapes_prompt")
    with pytest.raises(BadRequest, match="does not take"):
        ln.auto_annotate_project(str(pid), "segment", "shapes_prompt", confidense=0.3)
    with pytest.raises(NotFound, match=str(job_id + 1000)):
        ln.client._post(
            f"/labelstudio/projects/{pid}/predictions", json={"job_ids": [job_id + 1000]}
        )
    with pytest.raises(ValidationFailed, match="job_ids"):
        ln.client._post(f"/labelstudio/projects/{pid}/predictions", json={})
