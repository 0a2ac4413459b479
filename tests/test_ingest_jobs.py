"""An S3 prefix over METALAKE_INGEST_MAX_LISTING objects is ingested by a background job on a
real worker, page by page, with its progress readable and the SDK following it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config import Settings
from sdk import Client
from tests.fixtures import imagegen
from tests.fixtures.worker import running_worker, settings, shared_envs_dir  # noqa: F401

PAGE = 3


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ingest_max_listing": PAGE})


def _job(api_url: str, key: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{api_url}/api/v1/collections/ingest-jobs/{job_id}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_large_prefix_is_ingested_by_a_background_job(
    client: Client,
    api_url: str,
    admin_key: str,
    make_key: Any,
    s3: Any,
    bucket: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    local = imagegen.images(tmp_path / "src", [f"{i}.jpg" for i in range(7)])
    for i, path in enumerate(local):
        s3.upload_file(str(path), bucket, f"big/{i}.jpg")
    s3.put_object(Bucket=bucket, Key="big/bad.jpg", Body=b"nope")

    started = httpx.post(
        f"{api_url}/api/v1/collections/ingest",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={"collection_name": "big", "content_type": "image", "s3_uri": f"s3://{bucket}/big"},
    )
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["status"], job["listed"], job["done"]) == ("queued", 0, 0)
    reader = httpx.get(
        f"{api_url}/api/v1/collections/ingest-jobs/{job['id']}",
        headers={"Authorization": f"Bearer {make_key('read')}"},
    )
    assert reader.status_code == 403  # its failures name S3 keys

    with running_worker(
        settings, tmp_path / "worker.log", extra_env={"METALAKE_INGEST_MAX_LISTING": str(PAGE)}
    ):
        deadline = time.monotonic() + 60
        while (job := _job(api_url, admin_key, job["id"]))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        assert (job["listed"], job["done"]) == (8, 8)
        assert (job["report"]["added"], len(job["report"]["failed"])) == (7, 1)
        assert job["report"]["failed"][0]["path"] == f"s3://{bucket}/big/bad.jpg"

        # The SDK follows a job itself; the same prefix again registers nothing twice.
        with pytest.warns(UserWarning, match="1 of 8"):
            cid = client.upload_files_to_collection(f"s3://{bucket}/big", "image", "big")
    report = client.last_upload_report
    assert report is not None
    assert (report.added, report.unchanged) == (0, 7)
    assert client.get_collection_details(cid)["file_count"] == 7

    missing = httpx.get(
        f"{api_url}/api/v1/collections/ingest-jobs/nope",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ingest_job_not_found"
