"""The `aws` inference platform against moto in server mode: SageMaker objects created once and
reused, the bundle uploaded as model.tar.gz, the invoke request's shape, canned answers taken
from the local serve entrypoint, and AWS errors translated into engine errors."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from engine.config import Settings
from engine.errors import (
    EndpointModelError,
    EndpointPayloadTooLarge,
    EndpointRejected,
    EndpointSetupFailed,
    EndpointThrottled,
    InvalidInput,
    ModelCodeError,
    PlatformNotConfigured,
    UnknownPlatform,
)
from engine.hosting.bundles import BundleCache
from engine.hosting.contract import TagPrediction, encode_batch, validate_outputs
from engine.hosting.platforms.aws import SageMakerPlatform, check_configured
from engine.hosting.platforms.factory import platform_named, platform_type
from engine.hosting.platforms.sagemaker_naming import endpoint_name, max_batch_images
from engine.hosting.reference import ModelVersionRef
from engine.storage import Storage, file_uri
from sdk.packing import pack_bundle
from tests.fixtures.services import MotoServer

BUNDLES = Path(__file__).parent / "bundles"
NPZ = "application/x-npz"
JSON = "application/json"
ROLE = "arn:aws:iam::123456789012:role/metalake-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/metalake-serve:test"


@pytest.fixture
def aws_settings(moto: MotoServer, bucket: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        s3_endpoint_url=moto.url,
        sagemaker_endpoint_url=moto.url,
        sagemaker_image_uri=IMAGE,
        sagemaker_role_arn=ROLE,
        sagemaker_bucket=f"s3://{bucket}/sagemaker",
    )


@pytest.fixture
def echo_version(tmp_path: Path) -> ModelVersionRef:
    """The echo test bundle as a registered version (a unique name: moto is shared)."""
    archive = tmp_path / "echo.tar.gz"
    pack_bundle(BUNDLES / "echo", archive)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    return ModelVersionRef(
        id=1,
        name=f"echo_{uuid.uuid4().hex[:8]}",
        version=3,
        application="autotagging",
        bundle_uri=file_uri(archive),
        sha256=sha,
    )


@pytest.fixture
def platform(aws_settings: Settings) -> Iterator[SageMakerPlatform]:
    made = SageMakerPlatform(aws_settings, Storage.from_settings(aws_settings), poll_seconds=0.1)
    yield made
    made.close()


@pytest.fixture
def sagemaker(moto: MotoServer) -> Any:
    return boto3.client("sagemaker", endpoint_url=moto.url, region_name="us-east-1")


def _count_calls(client: Any, service: str) -> Counter[str]:
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register(f"before-call.{service}", count)
    return calls


def _batch(n: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    width, height = size
    images = [np.full((height, width, 3), (i * 60, 10, 200 - i * 50), np.uint8) for i in range(n)]
    return encode_batch(
        images,
        {
            "application": "autotagging",
            "confidence_threshold": 0.5,
            "input_resolution": [width, height],
            "original_sizes": [[width * 2, height * 2]] * n,
        },
    )


# -- configuration ------------------------------------------------------------------------------
def test_missing_settings_are_named(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, sagemaker_role_arn=ROLE)
    with pytest.raises(PlatformNotConfigured) as caught:
        check_configured(settings)
    assert caught.value.missing == ["METALAKE_SAGEMAKER_IMAGE_URI", "METALAKE_SAGEMAKER_BUCKET"]
    assert "METALAKE_SAGEMAKER_IMAGE_URI, METALAKE_SAGEMAKER_BUCKET" in str(caught.value)
    assert caught.value.status_code == 400
    with pytest.raises(PlatformNotConfigured):
        SageMakerPlatform(settings, Storage.from_settings(settings))


def test_bucket_must_be_an_s3_uri(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        sagemaker_role_arn=ROLE,
        sagemaker_image_uri=IMAGE,
        sagemaker_bucket="my-bucket",
    )
    with pytest.raises(PlatformNotConfigured, match="s3://bucket/prefix"):
        check_configured(settings)


# -- names and sizes ----------------------------------------------------------------------------
def test_endpoint_names_are_valid_for_sagemaker() -> None:
    sha = "ab" * 32
    short = ModelVersionRef(1, "my_model.v2", 7, "embedding", "file:///x", sha)
    assert endpoint_name(short) == "metalake-my-model-v2-v7-abababab"
    long = ModelVersionRef(1, "x" * 128, 123, "embedding", "file:///x", sha)
    name = endpoint_name(long)
    assert len(name) <= 63
    assert name.endswith("-v123-abababab")
    for version in (short, long, ModelVersionRef(1, "__", 1, "embedding", "file:///x", sha)):
        assert all(c.isalnum() or c == "-" for c in endpoint_name(version))


@pytest.mark.parametrize("size", [(300, 300), (640, 480), (224, 224), (1024, 768)])
def test_max_batch_images_keeps_bodies_under_the_limit(size: tuple[int, int]) -> None:
    limit = 6_000_000
    count = max_batch_images(*size, max_payload_bytes=limit)
    body = _batch(count, size)
    assert len(body) <= limit
    assert len(body) > limit - 2 * (size[0] * size[1] * 3) - (20 << 10)  # not wasteful


def test_an_image_larger_than_the_limit_is_a_clear_error() -> None:
    with pytest.raises(EndpointPayloadTooLarge, match="smaller input_resolution"):
        max_batch_images(2000, 1500, max_payload_bytes=6_000_000)


# -- control plane ----------------------------------------------------------------------------
def test_endpoint_is_created_once_and_reused(
    platform: SageMakerPlatform,
    aws_settings: Settings,
    echo_version: ModelVersionRef,
    sagemaker: Any,
    s3: Any,
    bucket: str,
) -> None:
    calls = _count_calls(platform.sagemaker, "sagemaker")
    name = platform.ensure_endpoint(echo_version)

    assert name == endpoint_name(echo_version)
    assert {op: calls[op] for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint")} == {
        "CreateModel": 1,
        "CreateEndpointConfig": 1,
        "CreateEndpoint": 1,
    }
    model = sagemaker.describe_model(ModelName=name)
    key = f"sagemaker/{echo_version.name}/3-{echo_version.sha256[:12]}/model.tar.gz"
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/{key}"
    assert model["ExecutionRoleArn"] == ROLE
    assert not any(k.startswith("AWS_") for k in model["PrimaryContainer"]["Environment"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    (variant,) = config["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        name,
        "ml.m5.xlarge",
        1,
    )
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    assert (endpoint["EndpointConfigName"], endpoint["EndpointStatus"]) == (name, "InService")
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == Path(echo_version.bundle_uri[len("file://") :]).read_bytes()
    assert stored["Metadata"]["sha256"] == echo_version.sha256

    # the same worker: cached, no call at all
    calls.clear()
    assert platform.ensure_endpoint(echo_version) == name
    assert not calls

    # another worker: finds everything, creates and uploads nothing
    other = SageMakerPlatform(aws_settings, Storage.from_settings(aws_settings))
    other_calls = _count_calls(other.sagemaker, "sagemaker")
    uploads = _count_calls(other.storage.s3, "s3")
    assert other.ensure_endpoint(echo_version) == name
    assert not [op for op in other_calls if op.startswith("Create")]
    assert not [op for op in uploads if op in ("PutObject", "CreateMultipartUpload")]
    assert len([m for m in sagemaker.list_models(NameContains=name)["Models"]]) == 1
    other.close()


def test_a_half_created_endpoint_is_completed(
    platform: SageMakerPlatform, echo_version: ModelVersionRef, sagemaker: Any
) -> None:
    """A worker that died after create_model: the next one reuses the model and goes on."""
    name = endpoint_name(echo_version)
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    calls = _count_calls(platform.sagemaker, "sagemaker")
    platform.ensure_endpoint(echo_version)
    assert calls["CreateModel"] == 0
    assert calls["CreateEndpointConfig"] == calls["CreateEndpoint"] == 1


# -- invocations --------------------------------------------------------------------------------
@pytest.fixture
def local_serve(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """`python -m engine.hosting.serve` (the container's program) for a bundle; its URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(bundle: Path) -> str:
        port_file = tmp_path / "serve.port"
        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.hosting.serve",
                "--model-dir",
                str(bundle),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        while httpx.get(url + "/ping").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return url

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def _record_and_make_moto_safe(client: Any) -> list[tuple[str, dict[str, str], bytes]]:
    """Record each InvokeEndpoint request as it goes on the wire, then base64 its body: moto's
    server decodes request bodies as UTF-8 (and JSON-encodes them as a cache key), so it fails
    on a binary npz body with a 500. Real SageMaker takes the bytes as they are."""
    wire: list[tuple[str, dict[str, str], bytes]] = []

    def record(request: Any, **_: Any) -> None:
        body = bytes(request.body)
        wire.append(
            (
                request.url,
                {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()},
                body,
            )
        )
        request.body = base64.b64encode(body)
        request.headers["Content-Length"] = str(len(request.body))

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", record)
    return wire


def test_invoke_sends_the_batch_and_returns_what_the_container_answers(
    platform: SageMakerPlatform,
    echo_version: ModelVersionRef,
    moto: MotoServer,
    local_serve: Callable[[Path], str],
) -> None:
    body = _batch(3)
    # what the serving program answers for these bytes, locally, is what the endpoint answers
    local = httpx.post(
        local_serve(BUNDLES / "echo") + "/invocations",
        content=body,
        headers={"Content-Type": NPZ, "Accept": JSON},
    )
    assert local.status_code == 200
    httpx.post(
        f"{moto.url}/moto-api/static/sagemaker/endpoint-results",
        json={
            "results": [{"Body": local.text, "ContentType": local.headers["content-type"]}],
        },
    ).raise_for_status()
    sent: list[dict[str, Any]] = []
    platform.runtime.meta.events.register(
        "before-parameter-build.sagemaker-runtime.InvokeEndpoint",
        lambda params, **_: sent.append(dict(params)),
    )
    wire = _record_and_make_moto_safe(platform.runtime)

    answer = platform.invoke(echo_version, body, NPZ, JSON)

    (request,) = sent
    name = endpoint_name(echo_version)
    assert request == {"EndpointName": name, "ContentType": NPZ, "Accept": JSON, "Body": body}
    ((url, headers, sent_body),) = wire
    assert url.endswith(f"/endpoints/{name}/invocations")
    assert (headers["Content-Type"], headers["Accept"]) == (NPZ, JSON)
    assert sent_body == body  # the very bytes the local host got
    assert answer == local.content
    outcomes = validate_outputs("autotagging", answer, 3)
    assert all(o.ok for o in outcomes), outcomes
    assert outcomes == validate_outputs("autotagging", local.content, 3)
    first = outcomes[0].output
    assert isinstance(first, TagPrediction)
    assert (first.boxes[0].x2, first.boxes[0].y2) == (32, 24)


def test_an_oversized_body_is_refused_before_anything_is_sent(
    aws_settings: Settings, echo_version: ModelVersionRef
) -> None:
    settings = aws_settings.model_copy(update={"sagemaker_max_payload_bytes": 40_000})
    platform = SageMakerPlatform(settings, Storage.from_settings(settings))
    calls = _count_calls(platform.runtime, "sagemaker-runtime")
    setup = _count_calls(platform.sagemaker, "sagemaker")
    with pytest.raises(EndpointPayloadTooLarge, match="split the chunk") as caught:
        platform.invoke(echo_version, _batch(20), NPZ)
    assert caught.value.details["limit"] == 40_000
    assert caught.value.endpoint_name == endpoint_name(echo_version)
    assert caught.value.status_code == 413
    assert not calls
    assert not setup
    assert platform.images_per_request(32, 24, {}, at_most=20) < 20


def _answer_with_error(client: Any, status: int, error: dict[str, Any]) -> None:
    """Make the client's next InvokeEndpoint get `error` back, as SageMaker would send it."""

    def respond(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("https://runtime.sagemaker", status, HTTPHeaders(), None), error

    client.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", respond)


def test_a_model_error_names_the_endpoint_and_the_bundles_message(
    platform: SageMakerPlatform, echo_version: ModelVersionRef
) -> None:
    container = {
        "error": {
            "code": "model_error",
            "stage": "predict_fn",
            "message": "RuntimeError: predict_fn was told to fail",
        }
    }
    _answer_with_error(
        platform.runtime,
        424,
        {
            "Error": {"Code": "ModelError", "Message": "Received server error (500) from primary"},
            "OriginalStatusCode": 500,
            "OriginalMessage": json.dumps(container),
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/x",
        },
    )
    with pytest.raises(EndpointModelError) as caught:
        platform.invoke(echo_version, _batch(1), NPZ)
    error = caught.value
    assert isinstance(error, ModelCodeError)  # the jobs handle it like the local host's
    assert error.endpoint_name == endpoint_name(echo_version)
    assert error.version_key == echo_version.key
    assert "predict_fn: RuntimeError: predict_fn was told to fail" in error.message
    assert error.log_file is not None
    assert error.log_file.startswith("arn:aws:logs")
    assert error.__cause__ is not None


@pytest.mark.parametrize(
    ("code", "expected"),
    [("ValidationError", EndpointRejected), ("ThrottlingException", EndpointThrottled)],
)
def test_validation_and_throttling_errors_are_translated(
    platform: SageMakerPlatform, echo_version: ModelVersionRef, code: str, expected: type[Exception]
) -> None:
    platform.ensure_endpoint(echo_version)
    _answer_with_error(platform.runtime, 400, {"Error": {"Code": code, "Message": "AWS says no"}})
    with pytest.raises(expected, match="AWS says no") as caught:
        platform.invoke(echo_version, _batch(1), NPZ)
    assert endpoint_name(echo_version) in str(caught.value)


def _describe_endpoint_answers(client: Any, **fields: Any) -> None:
    """Make describe_endpoint report `fields` (moto's endpoints are InService at once)."""

    def respond(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("https://api.sagemaker", 200, HTTPHeaders(), None), fields

    client.meta.events.register("before-call.sagemaker.DescribeEndpoint", respond)


def test_a_failed_endpoint_reports_aws_reason(
    platform: SageMakerPlatform, echo_version: ModelVersionRef
) -> None:
    _describe_endpoint_answers(
        platform.sagemaker,
        EndpointStatus="Failed",
        FailureReason="The primary container did not pass the ping",
    )
    with pytest.raises(EndpointSetupFailed, match="did not pass the ping") as caught:
        platform.ensure_endpoint(echo_version)
    assert caught.value.endpoint_name == endpoint_name(echo_version)


def test_an_endpoint_that_stays_creating_times_out(
    aws_settings: Settings, echo_version: ModelVersionRef
) -> None:
    settings = aws_settings.model_copy(update={"sagemaker_endpoint_timeout": 0.3})
    platform = SageMakerPlatform(settings, Storage.from_settings(settings), poll_seconds=0.05)
    _describe_endpoint_answers(platform.sagemaker, EndpointStatus="Creating")
    with pytest.raises(EndpointSetupFailed, match=r"still Creating after 0\.3 s"):
        platform.ensure_endpoint(echo_version)


def test_max_batch_images_leaves_room_for_a_prompt() -> None:
    prompt = [
        {"label": f"label{i}", "description": "a " + "very " * 10 + "long phrase"}
        for i in range(38)
    ]
    assert len(json.dumps(prompt)) < 4096
    count = max_batch_images(640, 640, max_payload_bytes=6_000_000)
    images = [np.zeros((640, 640, 3), np.uint8)] * count
    body = encode_batch(
        images,
        {
            "application": "auto_annotation",
            "prompt": prompt,
            "input_resolution": [640, 640],
            "original_sizes": [[12345, 12345]] * count,
        },
    )
    assert len(body) <= 6_000_000


def test_the_workers_entry_point_builds_the_platform(aws_settings: Settings) -> None:
    bundles = BundleCache.from_settings(aws_settings, Storage.from_settings(aws_settings))
    platform = platform_named("aws", aws_settings, bundles=bundles)
    assert isinstance(platform, SageMakerPlatform)
    assert platform.name == "aws"
    platform.close()


def test_platforms_by_name_carry_their_request_limits(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", sagemaker_max_payload_bytes=40_000)
    local = platform_type("local")
    local.check_settings(settings)
    local.check_request(settings, 1024, 1024)  # a local request has no size limit
    aws = platform_type("aws")
    aws.check_request(settings, 32, 24)
    with pytest.raises(InvalidInput, match="smaller input_resolution") as refused:
        aws.check_request(settings, 1024, 1024)
    assert refused.value.status_code == 400
    assert refused.value.details["input_resolution"] == [1024, 1024]
    with pytest.raises(PlatformNotConfigured):
        aws.check_settings(settings)
    with pytest.raises(UnknownPlatform):
        platform_type("azure")
