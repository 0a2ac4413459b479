"""Jobs: validation at the API, per-item failures, retry of failed items only, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.jobs import JobItem
from engine.db.models import File, Tag
from sdk.errors import BadRequest, NotFound, ValidationFailed
from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import running_worker, settings, shared_envs_dir, worker  # noqa: F401


@pytest.fixture
def shapes(
    client: Any,
    tmp_path: Path,
    shapes_detector_bundle: Path,
) -> dict[str, Any]:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for index in range(12):
        scene(index, seed=3).image.save(folder / f"s{index:02d}.png")
    cid = client.upload_files_to_collection(folder, "image", "small")
    client.register_model(shapes_detector_bundle, "yolo", "autotagging")
    return {"cid": cid, "folder": folder}


def test_validation_errors(client: Any, shapes: dict[str, Any]) -> None:
    cid = shapes["cid"]
    with pytest.raises(BadRequest) as bad:
        client.auto_tag_collection(cid, "yolo", (160, 160), 0.5, None, None, "gcp")
    assert bad.value.code == "unknown_platform"
    with pytest.raises(NotFound):
        client.auto_tag_collection(cid, "nope", (160, 160))
    with pytest.raises(BadRequest):
        client.auto_tag_collection(cid, "yolo", (160, 160), 1.5)
    with pytest.raises(BadRequest):
        client.auto_tag_collection(cid, "yolo", (0, 160))
    with pytest.raises(BadRequest) as query:
        client.auto_tag_collection(cid, "yolo", (160, 160), 0.5, "tag==(")
    assert query.value.code == "invalid_query"
    with pytest.raises(NotFound):
        client.auto_tag_collection(999999, "yolo")
    with pytest.raises(NotFound):  # an autotagging model is not an embedding model
        client.generate_embeddings_for_collection(cid, "yolo")
    with pytest.raises(NotFound):
        client.get_job(424242)
    # model_name= is the keyword alias of model_id
    job = client.generate_auto_tags_to_metalake(
        "image", model_name="yolo", input_resolution=(160, 160)
    )
    assert job["status"] == "queued"


def test_job_parameters_are_checked_by_their_types(
    client: Any, shapes: dict[str, Any], api_url: str
) -> None:
    """The request models carry each parameter's rule, and OpenAPI shows it; a value against
    it is the engine's 400 with its code and a message naming the parameter, whether the API
    or the SDK refuses it."""
    import httpx

    base = {"collection_id": shapes["cid"], "model_id": "yolo"}
    for body, code, named in [
        ({"confidence_threshold": 1.5}, "invalid_input", "confidence_threshold"),
        ({"confidence_threshold": True}, "invalid_input", "confidence_threshold"),
        ({"input_resolution": [0, 160]}, "invalid_input", "input_resolution"),
        ({"input_resolution": [160, 160, 3]}, "invalid_input", "input_resolution"),
        ({"input_resolution": [160.5, 160]}, "invalid_input", "input_resolution"),
        ({"inference_platform": "gcp"}, "unknown_platform", "inference platform 'gcp'"),
    ]:
        with pytest.raises(BadRequest) as refused:
            client._post("/jobs/autotag", json={**base, **body})
        assert (refused.value.status, refused.value.code) == (400, code), body
        assert named in refused.value.message
    with pytest.raises(BadRequest) as refused:
        client._post("/jobs/auto-annotate", json={**base, "annotation_type": "mask"})
    assert "annotation_type must be 'polygon' or 'box'" in refused.value.message
    with pytest.raises(ValidationFailed):  # not against a parameter's rule: malformed
        client._post("/jobs/autotag", json={**base, "query": 5})
    # the SDK checks the same rules before sending
    with pytest.raises(BadRequest) as refused:
        client.auto_tag_collection(shapes["cid"], "yolo", (160, 9000))
    assert refused.value.code == "invalid_input"
    assert "up to 8192" in refused.value.message
    # upper case and null are accepted as before
    client._post(
        "/jobs/autotag", json={**base, "inference_platform": " LOCAL ", "input_resolution": None}
    )

    schemas = httpx.get(f"{api_url}/openapi.json").json()["components"]["schemas"]
    autotag = schemas["AutotagRequest"]["properties"]
    assert (
        autotag["confidence_threshold"]["minimum"],
        autotag["confidence_threshold"]["maximum"],
    ) == (0, 1)
    assert [side["maximum"] for side in autotag["input_resolution"]["prefixItems"]] == [8192, 8192]
    assert set(schemas["PlatformChoice"]["enum"]) == {"use_env", "local", "aws"}
    assert set(schemas["JobStatus"]["enum"]) >= {"queued", "partially_failed"}


def test_submission_parses_and_compiles_the_query_once(
    shapes: dict[str, Any],
    session: Session,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checking a job's query and counting the files it selects share one compiled query."""
    from engine import query
    from engine.jobs.planning import count_selected
    from engine.jobs.submission import validate_autotag
    from sdk.schemas import AutotagRequest

    parsed: list[str] = []
    parse = query.parse
    monkeypatch.setattr(query, "parse", lambda text: parsed.append(text) or parse(text))
    request = AutotagRequest(
        collection_id=shapes["cid"], model_id="yolo", query="width > 1", input_resolution=(160, 160)
    )
    job = validate_autotag(session, settings, request)
    assert count_selected(session, job.selection) == 12
    assert parsed == ["width > 1"]
    assert job.params.query == "width > 1"


def test_corrupt_file_fails_only_its_item_and_retry_reruns_it(
    client: Any, worker: Any, shapes: dict[str, Any], session: Session
) -> None:
    broken = shapes["folder"] / "s03.png"
    good = broken.read_bytes()
    broken.write_bytes(b"not an image at all")
    (shapes["folder"] / "s07.png").unlink()
    job = client.auto_tag_collection(shapes["cid"], "yolo", (160, 160), 0.5, None, None, "local")
    final = client.wait_for_job(job["job_id"], timeout=180, progress=False)
    assert final["status"] == "partially_failed"
    assert (final["total"], final["done"], final["failed"]) == (12, 10, 2)
    reasons = {e["unique_name"]: e["error"] for e in final["errors"]}
    assert set(reasons) == {"small_s03.png", "small_s07.png"}
    assert "decode" in reasons["small_s03.png"]
    assert "gone" in reasons["small_s07.png"] or "exist" in reasons["small_s07.png"]

    broken.write_bytes(good)
    session.expire_all()
    before = {
        i.file_id: i.attempts
        for i in session.scalars(select(JobItem).where(JobItem.job_id == job["job_id"]))
    }
    retried = client.retry_failed(job["job_id"])
    assert retried["status"] == "running"
    assert retried["failed"] == 0
    final = client.wait_for_job(job["job_id"], timeout=180, progress=False)
    assert (final["status"], final["done"], final["failed"]) == ("partially_failed", 11, 1)
    session.expire_all()
    after = {
        i.file_id: i.attempts
        for i in session.scalars(select(JobItem).where(JobItem.job_id == job["job_id"]))
    }
    rerun = {f for f in after if after[f] != before[f]}
    names = set(session.scalars(select(File.unique_name).where(File.id.in_(rerun))))
    assert names == {"small_s03.png", "small_s07.png"}  # only the failed items ran again
    tagged = set(session.scalars(select(File.unique_name).join(Tag, Tag.file_id == File.id)))
    assert "small_s03.png" in tagged


def test_cancel_stops_chunks_not_started(
    client: Any, shapes: dict[str, Any], session: Session, settings: Settings, tmp_path: Path
) -> None:
    job = client.auto_tag_collection(shapes["cid"], "yolo", (160, 160), 0.5, None, None, "local")
    cancelled = client.cancel_job(job["job_id"])
    assert cancelled["status"] == "cancelled"
    with running_worker(settings, tmp_path / "worker.log"):
        other = client.auto_tag_collection(
            shapes["cid"], "yolo", (160, 160), 0.5, "", None, "local"
        )
        assert (
            client.wait_for_job(other["job_id"], timeout=180, progress=False)["status"]
            == "succeeded"
        )
    final = client.get_job(job["job_id"])
    assert final["status"] == "cancelled"
    assert final["done"] == 0
    session.expire_all()
    assert not list(session.scalars(select(Tag).where(Tag.job_id == job["job_id"])))
    assert [j["job_id"] for j in client.list_jobs()][:2] == [other["job_id"], job["job_id"]]


def test_a_job_whose_planning_fails_is_failed_with_the_reason(
    client: Any,
    shapes: dict[str, Any],
    session: Session,
    settings: Settings,
    worker: Any,
) -> None:
    from engine.db.jobs import Job
    from engine.db.models import ModelVersion
    from engine.jobs.celery_app import create_celery
    from engine.jobs.dispatch import CeleryDispatcher

    # a job row whose parameters cannot be planned (as a job written by another engine
    # version could be): the plan task must not leave it queued forever
    version_id = session.scalars(select(ModelVersion.id)).one()
    row = Job(
        kind="autotagging",
        platform="local",
        params={"query": None},
        model_version_id=version_id,
        collection_id=shapes["cid"],
        status="queued",
    )
    session.add(row)
    session.commit()
    CeleryDispatcher(create_celery(settings)).plan(row.id)
    final = client.wait_for_job(row.id, timeout=60, progress=False)
    assert final["status"] == "failed"
    assert final["error"].startswith("planning failed: ")
    assert "content_type" in final["error"]
    assert final["total"] == 0


def test_a_held_get_job_answers_as_the_job_finishes(
    client: Any, shapes: dict[str, Any], api_url: str, admin_key: str
) -> None:
    """GET /jobs/{id}?wait= holds an unfinished job's answer until it finishes, or until the
    wait is over; wait_for_job relies on it to see the end at once, whatever poll_interval."""
    import threading
    import time

    from sdk import Client

    def submit() -> int:
        return int(
            client.auto_tag_collection(shapes["cid"], "yolo", (160, 160), 0.5, None, None, "local")[
                "job_id"
            ]
        )

    def cancel_after(job_id: int, seconds: float) -> threading.Thread:
        def run() -> None:
            time.sleep(seconds)
            with Client(api_url, admin_key) as other:
                other.cancel_job(job_id)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    # no worker runs: the jobs stay queued until cancelled
    held = submit()
    started = time.monotonic()
    job = client._get(f"/jobs/{held}", params={"wait": 1.0})
    assert job["status"] == "queued"
    assert time.monotonic() - started >= 1.0  # held for the whole wait

    canceller = cancel_after(held, 1.0)
    started = time.monotonic()
    job = client._get(f"/jobs/{held}", params={"wait": 30})
    answered = time.monotonic() - started
    canceller.join()
    assert job["status"] == "cancelled"
    assert 0.9 <= answered < 10  # as it finished, not after the 30 s

    started = time.monotonic()
    assert client._get(f"/jobs/{held}", params={"wait": 30})["status"] == "cancelled"
    assert time.monotonic() - started < 5  # a finished job is answered at once

    waited = submit()
    canceller = cancel_after(waited, 1.0)
    started = time.monotonic()
    final = client.wait_for_job(waited, timeout=60, poll_interval=30, progress=False)
    canceller.join()
    assert final["status"] == "cancelled"
    assert time.monotonic() - started < 10

    with pytest.raises(ValidationFailed) as too_long:
        client._get(f"/jobs/{waited}", params={"wait": 61})
    assert "query.wait" in str(too_long.value)
    assert "less than or equal to 60" in str(too_long.value)
    with pytest.raises(NotFound):
        client._get("/jobs/424242", params={"wait": 5})
