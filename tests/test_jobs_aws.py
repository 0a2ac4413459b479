"""Jobs on the `aws` platform: refused at submission when SageMaker is not configured (also
through `use_env`), and a whole autotag job run by a real worker against moto's SageMaker, each
chunk split into requests that stay under METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES.

(An unknown platform's 400 is in tests/test_jobs.py.)"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import tests.fixtures.worker
from engine.config import Settings
from engine.db.models import File, Model, ModelVersion, Tag
from engine.hosting.platforms.sagemaker_naming import max_batch_images
from sdk.errors import BadRequest
from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.services import MotoServer
from tests.fixtures.shapes import scene
from tests.fixtures.worker import _redis_db, running_worker, shared_envs_dir  # noqa: F401

ROLE = "arn:aws:iam::123456789012:role/metalake-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/metalake-serve:test"
SIZE = (64, 64)
PER_REQUEST = 3
# the body limit that lets exactly PER_REQUEST images of SIZE into one request
LIMIT = 2048 + 4 * 4096 + PER_REQUEST * (SIZE[0] * SIZE[1] * 3 + 128) + 100
SAGEMAKER_ENV = (
    "METALAKE_SAGEMAKER_IMAGE_URI",
    "METALAKE_SAGEMAKER_ROLE_ARN",
    "METALAKE_SAGEMAKER_BUCKET",
)


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    database_url: str,
    redis_url: str,
    moto: MotoServer,
    tmp_path: Path,
    shared_envs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The API's and the worker's settings; `parametrize("settings", [{...}], indirect=True)`
    adds fields."""
    for name in SAGEMAKER_ENV:  # Settings() must not pick up a developer's own
        monkeypatch.delenv(name, raising=False)
    extra: dict[str, Any] = getattr(request, "param", {})
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url=_redis_db(redis_url),
        s3_endpoint_url=moto.url,
        envs_dir=shared_envs_dir,
        chunk_size=6,
        **extra,
    )


@pytest.fixture
def shapes(
    client: Any,
    tmp_path: Path,
    shapes_detector_bundle: Path,
) -> dict[str, Any]:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for index in range(12):
        scene(index, seed=5).image.save(folder / f"a{index:02d}.png")
    cid = client.upload_files_to_collection(folder, "image", "aws")
    client.register_model(shapes_detector_bundle, "yolo", "autotagging")
    return {"cid": cid}


def _refused(call: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        call()
    error = caught.value
    assert error.code == "platform_not_configured"
    for name in SAGEMAKER_ENV:
        assert name in str(error)
    return error


def test_aws_without_sagemaker_settings_is_refused_at_submission(
    client: Any, shapes: dict[str, Any]
) -> None:
    cid = shapes["cid"]
    _refused(lambda: client.auto_tag_collection(cid, "yolo", SIZE, 0.5, None, None, "aws"))
    _refused(lambda: client.generate_embeddings_to_metalake("image", "yolo", None, None, "AWS"))
    assert client.list_jobs() == []  # nothing was created, nothing queued
    # use_env on a local engine still runs locally
    job = client.auto_tag_collection(cid, "yolo", SIZE)
    assert client.get_job(job["job_id"])["platform"] == "local"


@pytest.mark.parametrize("settings", [{"inference_platform": "aws"}], indirect=True)
def test_use_env_resolving_to_aws_is_refused_the_same_way(
    client: Any, shapes: dict[str, Any]
) -> None:
    cid = shapes["cid"]
    _refused(lambda: client.auto_tag_collection(cid, "yolo", SIZE))  # use_env by default
    _refused(lambda: client.auto_tag_collection(cid, "yolo", SIZE, 0.5, None, None, "use_env"))
    assert client.list_jobs() == []
    job = client.auto_tag_collection(cid, "yolo", SIZE, 0.5, None, None, "local")
    assert client.get_job(job["job_id"])["platform"] == "local"


# -- a whole job on moto's SageMaker ----------------------------------------------------------
# moto's server decodes an InvokeEndpoint body as UTF-8 and fails with a 500 on a binary npz.
# Real SageMaker takes the bytes as they are, so the worker (a subprocess) gets this
# sitecustomize: it records each body as it goes on the wire, then base64s it for moto only,
# like `_record_and_make_moto_safe` in tests/test_platform_aws.py.
SITECUSTOMIZE = """
import base64, os
try:
    import botocore.session
except ImportError:
    pass
else:
    _init = botocore.session.Session.__init__

    def _moto_safe(request, **_):
        body = bytes(request.body)
        folder = os.environ["TEST_INVOKE_BODIES"]
        with open(os.path.join(folder, f"{len(os.listdir(folder)):04d}.npz"), "wb") as out:
            out.write(body)
        request.body = base64.b64encode(body)
        request.headers["Content-Length"] = str(len(request.body))

    def __init__(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        self.register("before-send.sagemaker-runtime.InvokeEndpoint", _moto_safe)

    botocore.session.Session.__init__ = __init__
"""


@pytest.fixture
def aws_engine(
    settings: Settings,
    moto: MotoServer,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Settings, Path]]:
    """`settings` with SageMaker on moto, for the API; the worker gets the same as METALAKE_*
    variables plus the sitecustomize above. Yields (settings, folder of the sent bodies), then
    deletes the SageMaker objects the job made (moto is shared by the whole session)."""
    configured = settings.model_copy(
        update={
            "inference_platform": "aws",
            "sagemaker_image_uri": IMAGE,
            "sagemaker_role_arn": ROLE,
            "sagemaker_bucket": f"s3://{bucket}/sagemaker",
            "sagemaker_endpoint_url": moto.url,
            "sagemaker_max_payload_bytes": LIMIT,
        }
    )
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    plain = tests.fixtures.worker.worker_env

    def worker_env(given: Settings) -> dict[str, str]:
        env = plain(given)
        env.update(
            {
                "METALAKE_INFERENCE_PLATFORM": "aws",
                "METALAKE_SAGEMAKER_IMAGE_URI": IMAGE,
                "METALAKE_SAGEMAKER_ROLE_ARN": ROLE,
                "METALAKE_SAGEMAKER_BUCKET": f"s3://{bucket}/sagemaker",
                "METALAKE_SAGEMAKER_ENDPOINT_URL": moto.url,
                "METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES": str(LIMIT),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")])),
                "TEST_INVOKE_BODIES": str(bodies),
            }
        )
        return env

    monkeypatch.setattr(tests.fixtures.worker, "worker_env", worker_env)
    yield configured, bodies
    sagemaker = boto3.client("sagemaker", endpoint_url=moto.url, region_name="us-east-1")
    mine = "metalake-yolo-"
    for endpoint in sagemaker.list_endpoints()["Endpoints"]:
        if endpoint["EndpointName"].startswith(mine):
            sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])
    for config in sagemaker.list_endpoint_configs()["EndpointConfigs"]:
        if config["EndpointConfigName"].startswith(mine):
            sagemaker.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
    for model in sagemaker.list_models()["Models"]:
        if model["ModelName"].startswith(mine):
            sagemaker.delete_model(ModelName=model["ModelName"])


@pytest.fixture
def api_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The aws-configured settings when the test uses `aws_engine`."""
    if "aws_engine" in request.fixturenames:
        configured: Settings = request.getfixturevalue("aws_engine")[0]
        return configured
    return settings


def _echo_answer(count: int, width: int, height: int, label: int) -> str:
    """What the echo test bundle answers: one whole-image box per image."""
    return json.dumps(
        [
            {
                "boxes": [[0.0, 0.0, float(width), float(height), 0.9, label]],
                "masks": None,
                "probs": None,
            }
            for _ in range(count)
        ]
    )


def test_an_autotag_job_runs_on_sagemaker_in_requests_under_the_limit(
    aws_engine: tuple[Settings, Path],
    client: Any,
    shapes: dict[str, Any],
    moto: MotoServer,
    session: Session,
    tmp_path: Path,
) -> None:
    configured, bodies = aws_engine
    assert max_batch_images(*SIZE, max_payload_bytes=LIMIT) == PER_REQUEST
    too_big = (1024, 1024)  # not one image of this size fits in LIMIT bytes: a 400, no job
    with pytest.raises(BadRequest, match="smaller input_resolution"):
        client.auto_tag_collection(shapes["cid"], "yolo", too_big)

    # 12 files in chunks of 6, each sent as 2 requests of 3 images: 4 distinct requests,
    # each answered (in order) from moto's queue of endpoint results
    requests = 12 // PER_REQUEST
    label = 1
    httpx.post(
        f"{moto.url}/moto-api/static/sagemaker/endpoint-results",
        json={
            "results": [
                {"Body": _echo_answer(PER_REQUEST, *SIZE, label), "ContentType": "application/json"}
                for _ in range(requests)
            ]
        },
    ).raise_for_status()
    with running_worker(configured, tmp_path / "worker.log"):
        job = client.auto_tag_collection(shapes["cid"], "yolo", SIZE)  # use_env -> aws
        final = client.wait_for_job(job["job_id"], timeout=180, progress=False)
    log = (tmp_path / "worker.log").read_text()
    assert final["status"] == "succeeded", (final, log[-3000:])
    assert (final["platform"], final["total"], final["done"]) == ("aws", 12, 12)

    sagemaker = boto3.client("sagemaker", endpoint_url=moto.url, region_name="us-east-1")
    endpoints = [
        e["EndpointName"]
        for e in sagemaker.list_endpoints()["Endpoints"]
        if e["EndpointName"].startswith("metalake-yolo-v1-")
    ]
    assert len(endpoints) == 1  # created once, reused by both chunks

    sent = sorted(bodies.iterdir())
    assert len(sent) == requests
    for path in sent:
        body = path.read_bytes()
        assert len(body) <= LIMIT
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            assert archive["images"].shape == (PER_REQUEST, SIZE[1], SIZE[0], 3)
            parameters = json.loads(str(archive["parameters"].item()))
        assert parameters["input_resolution"] == list(SIZE)
        assert len(parameters["original_sizes"]) == PER_REQUEST

    session.expire_all()
    labels = session.scalar(
        select(ModelVersion.label_list).join(ModelVersion.model).where(Model.name == "yolo")
    )
    assert labels
    tags = session.execute(
        select(File.unique_name, Tag.name)
        .join(Tag, Tag.file_id == File.id)
        .where(Tag.job_id == job["job_id"])
    ).all()
    assert {unique for unique, _ in tags} == {f"aws_a{i:02d}.png" for i in range(12)}
    assert {tag for _, tag in tags} == {labels[label]}  # one tag per file, named by the labels
