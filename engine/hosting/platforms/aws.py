"""The `aws` inference platform: each model version served by a SageMaker real-time endpoint.

`ensure_endpoint` uploads the bundle, creates the SageMaker model, endpoint config and endpoint
once per model version (every step looks before it creates) and waits until it is InService;
`invoke` sends the chunk's request with `invoke_endpoint`. AWS errors become `EndpointError`
subclasses in one place, `_aws_errors`. docs/aws.md describes the steps, names and errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

from engine.config import Settings
from engine.errors import (
    EndpointError,
    EndpointModelError,
    EndpointPayloadTooLarge,
    EndpointRejected,
    EndpointSetupFailed,
    EndpointThrottled,
    InvalidInput,
    PlatformNotConfigured,
    StorageError,
)
from engine.hosting.bundles import BundleCache
from engine.hosting.platforms.sagemaker_naming import (
    DEFAULT_PARAMETERS_CHARS,
    endpoint_name,
    max_batch_images,
    model_data_key,
)
from engine.hosting.reference import ModelVersionRef
from engine.storage import Storage, split_s3

log = logging.getLogger(__name__)

REQUIRED = {
    "sagemaker_image_uri": "METALAKE_SAGEMAKER_IMAGE_URI",
    "sagemaker_role_arn": "METALAKE_SAGEMAKER_ROLE_ARN",
    "sagemaker_bucket": "METALAKE_SAGEMAKER_BUCKET",
}
THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
    }
)
ALREADY_EXISTS = "Cannot create already existing"
WAITING = frozenset({"Creating", "Updating", "SystemUpdating"})
INVOKE_READ_TIMEOUT = 70  # SageMaker gives a container 60 s per invocation
RETRY_ATTEMPTS = 8


def check_configured(settings: Settings) -> None:
    """Raise PlatformNotConfigured naming the METALAKE_… variables still unset (call it when a
    job asks for `aws`, before anything is queued)."""
    missing = [env for field, env in REQUIRED.items() if not getattr(settings, field)]
    if missing:
        raise PlatformNotConfigured(
            f"The aws inference platform is not configured: set {', '.join(missing)} on the "
            "engine (see docs/aws.md), or run the job with inference_platform='local'.",
            missing=missing,
        )
    assert settings.sagemaker_bucket is not None
    if not settings.sagemaker_bucket.startswith("s3://"):
        raise PlatformNotConfigured(
            f"METALAKE_SAGEMAKER_BUCKET must be s3://bucket/prefix, not "
            f"{settings.sagemaker_bucket!r}.",
            missing=["METALAKE_SAGEMAKER_BUCKET"],
        )


class SageMakerPlatform:
    """Runs batches on SageMaker endpoints, one per model version, created on first use."""

    name = "aws"
    warning = None  # the code runs in SageMaker's own container, on AWS

    def __init__(self, settings: Settings, storage: Storage, *, poll_seconds: float = 15.0) -> None:
        check_configured(settings)
        self.settings = settings
        self.storage = storage
        self.poll_seconds = poll_seconds
        self._ready: dict[str, str] = {}  # version key -> endpoint name, InService
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @classmethod
    def check_settings(cls, settings: Settings) -> None:
        check_configured(settings)

    @classmethod
    def check_request(cls, settings: Settings, width: int, height: int) -> None:
        """One image at the job's input_resolution must fit in a request body."""
        try:
            max_batch_images(width, height, max_payload_bytes=settings.sagemaker_max_payload_bytes)
        except EndpointPayloadTooLarge as exc:
            raise InvalidInput(
                exc.message,
                input_resolution=[width, height],
                limit=settings.sagemaker_max_payload_bytes,
            ) from exc

    @classmethod
    def from_settings(
        cls, settings: Settings, *, bundles: BundleCache | None = None
    ) -> SageMakerPlatform:
        """The worker's entry point. `bundles` (the worker's unpacked bundle cache) is not
        needed: the endpoint gets the stored archive itself."""
        return cls(settings, Storage.from_settings(settings))

    # -- clients (built on first use, never at import) ----------------------------------------
    @cached_property
    def sagemaker(self) -> Any:
        return self._client("sagemaker", self.settings.sagemaker_endpoint_url, read_timeout=60)

    @cached_property
    def runtime(self) -> Any:
        return self._client(
            "sagemaker-runtime",
            self.settings.sagemaker_runtime_endpoint_url or self.settings.sagemaker_endpoint_url,
            read_timeout=INVOKE_READ_TIMEOUT,
        )

    def _client(self, service: str, endpoint_url: str | None, *, read_timeout: int) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint_url,
            region_name=self.settings.s3_region,
            config=Config(
                retries={"max_attempts": RETRY_ATTEMPTS, "mode": "standard"},
                read_timeout=read_timeout,
                max_pool_connections=16,
            ),
        )

    # -- the platform -------------------------------------------------------------------------
    def images_per_request(
        self, width: int, height: int, parameters: Mapping[str, Any], *, at_most: int
    ) -> int:
        """As many as fit in METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES (`max_batch_images`)."""
        chars = max(DEFAULT_PARAMETERS_CHARS, len(json.dumps(parameters)))
        fit = max_batch_images(
            width,
            height,
            parameters_chars=chars,
            max_payload_bytes=self.settings.sagemaker_max_payload_bytes,
        )
        return max(1, min(at_most, fit))

    def invoke(
        self,
        version: ModelVersionRef,
        body: bytes,
        content_type: str,
        accept: str = "application/json",
    ) -> bytes:
        name = endpoint_name(version)
        limit = self.settings.sagemaker_max_payload_bytes
        if len(body) > limit:
            raise EndpointPayloadTooLarge(
                f"The request for {name} is {len(body)} bytes, more than the {limit} a SageMaker "
                "endpoint accepts (METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES): split the chunk into "
                "requests of at most max_batch_images(width, height) images.",
                endpoint_name=name,
                version_key=version.key,
                size=len(body),
                limit=limit,
            )
        self.ensure_endpoint(version)
        with _aws_errors(name, version.key, "invoke"):
            response = self.runtime.invoke_endpoint(
                EndpointName=name, ContentType=content_type, Accept=accept, Body=body
            )
            return bytes(response["Body"].read())

    def ensure_endpoint(self, version: ModelVersionRef) -> str:
        """The name of the InService endpoint of `version`, creating what is missing."""
        ready = self._ready.get(version.key)
        if ready is not None:
            return ready
        with self._lock:
            lock = self._locks.setdefault(version.key, threading.Lock())
        with lock:  # threads of one worker create once; other workers find it via describe
            if version.key in self._ready:
                return self._ready[version.key]
            name = endpoint_name(version)
            with _aws_errors(name, version.key, "setup"):
                if self._endpoint_status(name) is None:
                    model_data = self._upload_model_data(version)
                    self._create_model(name, version, model_data)
                    self._create_endpoint_config(name, version)
                    self._create(
                        self.sagemaker.create_endpoint,
                        EndpointName=name,
                        EndpointConfigName=name,
                        Tags=_tags(version),
                    )
                    log.info("creating SageMaker endpoint %s for %s", name, version.key)
                self._wait_in_service(name, version)
            self._ready[version.key] = name
            return name

    def close(self) -> None:
        """Forget the clients (endpoints keep running: they cost money until deleted)."""
        for attribute in ("sagemaker", "runtime"):
            client = self.__dict__.pop(attribute, None)
            if client is not None:
                client.close()

    # -- steps of ensure_endpoint ---------------------------------------------------------------
    def _endpoint_status(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.sagemaker.describe_endpoint(EndpointName=name)  # type: ignore[no-any-return]
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def _upload_model_data(self, version: ModelVersionRef) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self.settings.sagemaker_bucket is not None
        bucket, prefix = split_s3(self.settings.sagemaker_bucket)
        key = model_data_key(prefix, version)
        uri = f"s3://{bucket}/{key}"
        s3 = self.storage.s3
        try:
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                if head.get("Metadata", {}).get("sha256") == version.sha256:
                    return uri
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in (
                    "404",
                    "NoSuchKey",
                    "NotFound",
                ):
                    raise
            with self.storage.open(version.bundle_uri) as source:
                s3.upload_fileobj(
                    source,
                    bucket,
                    key,
                    ExtraArgs={
                        "Metadata": {"sha256": version.sha256, "model": version.key},
                        "ContentType": "application/gzip",
                    },
                )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"Could not upload the bundle of {version.key} to {uri}: {exc}", uri=uri
            ) from exc
        log.info("uploaded the bundle of %s to %s", version.key, uri)
        return uri

    def _create_model(self, name: str, version: ModelVersionRef, model_data: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sagemaker.describe_model(ModelName=name)
            return
        except ClientError as exc:
            if not _is_missing(exc):
                raise
        self._create(
            self.sagemaker.create_model,
            ModelName=name,
            ExecutionRoleArn=self.settings.sagemaker_role_arn,
            PrimaryContainer={
                "Image": self.settings.sagemaker_image_uri,
                "ModelDataUrl": model_data,
                "Environment": {  # nothing secret: it is readable with DescribeModel
                    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json",
                    "METALAKE_MODEL_VERSION": version.key,
                    "METALAKE_BUNDLE_SHA256": version.sha256,
                },
            },
            Tags=_tags(version),
        )

    def _create_endpoint_config(self, name: str, version: ModelVersionRef) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sagemaker.describe_endpoint_config(EndpointConfigName=name)
            return
        except ClientError as exc:
            if not _is_missing(exc):
                raise
        self._create(
            self.sagemaker.create_endpoint_config,
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": name,
                    "InstanceType": self.settings.sagemaker_instance_type,
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=_tags(version),
        )

    @staticmethod
    def _create(call: Any, **params: Any) -> None:
        """A create_* call; another worker having created it first is success."""
        from botocore.exceptions import ClientError

        try:
            call(**params)
        except ClientError as exc:
            if ALREADY_EXISTS not in _message(exc):
                raise

    def _wait_in_service(self, name: str, version: ModelVersionRef) -> None:
        deadline = time.monotonic() + self.settings.sagemaker_endpoint_timeout
        while True:
            described = self._endpoint_status(name)
            status = (described or {}).get("EndpointStatus", "missing")
            if status == "InService":
                return
            if status not in WAITING:
                reason = (described or {}).get("FailureReason") or "no reason given"
                raise EndpointSetupFailed(
                    f"The SageMaker endpoint {name} for {version.key} is {status}: {reason}. "
                    f"Its container log is in CloudWatch (/aws/sagemaker/Endpoints/{name}); "
                    "delete the endpoint to have it created again.",
                    endpoint_name=name,
                    version_key=version.key,
                    status=status,
                )
            if time.monotonic() > deadline:
                raise EndpointSetupFailed(
                    f"The SageMaker endpoint {name} for {version.key} is still {status} after "
                    f"{self.settings.sagemaker_endpoint_timeout:g} s "
                    "(METALAKE_SAGEMAKER_ENDPOINT_TIMEOUT); the next chunk waits for it again.",
                    endpoint_name=name,
                    version_key=version.key,
                    status=status,
                )
            time.sleep(self.poll_seconds)


def _tags(version: ModelVersionRef) -> list[dict[str, str]]:
    return [
        {"Key": "metalake:model", "Value": version.key},
        {"Key": "metalake:sha256", "Value": version.sha256},
    ]


def _message(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Message") or exc)


def _is_missing(exc: Any) -> bool:
    return "Could not find" in _message(exc)


@contextlib.contextmanager
def _aws_errors(name: str, version_key: str, stage: str) -> Iterator[None]:
    """The one place AWS errors become engine errors, with the endpoint and AWS's message."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = _message(exc)
        where = dict(endpoint_name=name, version_key=version_key, aws_code=code)
        if code in THROTTLING:
            raise EndpointThrottled(
                f"SageMaker throttled {name} ({code}: {message}) after {RETRY_ATTEMPTS} "
                "attempts; lower the inference concurrency or add instances.",
                **where,
            ) from exc
        if stage == "setup":
            raise EndpointSetupFailed(
                f"Setting up the SageMaker endpoint {name} failed ({code}: {message}); check "
                "METALAKE_SAGEMAKER_ROLE_ARN, METALAKE_SAGEMAKER_IMAGE_URI and the role's "
                "permissions (docs/aws.md).",
                **where,
            ) from exc
        if code == "ModelError":
            status = exc.response.get("OriginalStatusCode")
            log_stream = exc.response.get("LogStreamArn")
            raise EndpointModelError(
                f"The model on {name} answered {status or 'an error'}: "
                f"{_container_message(exc.response.get('OriginalMessage')) or message}",
                log_file=str(log_stream) if log_stream else None,
                original_status=status,
                **where,
            ) from exc
        if code == "ValidationError":
            raise EndpointRejected(
                f"SageMaker refused the request to {name}: {message}", **where
            ) from exc
        raise EndpointError(f"Invoking {name} failed ({code}: {message})", **where) from exc
    except BotoCoreError as exc:
        raise EndpointError(
            f"SageMaker could not be reached for {name}: {exc}",
            endpoint_name=name,
            version_key=version_key,
        ) from exc


def _container_message(original: Any) -> str | None:
    """The bundle's error, from the JSON body `engine.hosting.serve` answers with."""
    if not original:
        return None
    try:
        error = json.loads(original)["error"]
        return f"{error.get('stage', 'the bundle')}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return str(original)
