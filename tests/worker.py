"""A real `metalake worker` subprocess for a test's settings, on a Redis database of its own.

Test modules import the fixtures: `from tests.worker import job_settings, worker  # noqa: F401`
after overriding nothing else; `job_settings` replaces `settings` for the API too.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from tests.services import MotoServer


def _redis_db(url: str) -> str:
    """The same server, a random database 1..15 (emptied), so tests do not see each other's
    queued tasks."""
    import redis

    base = url.rstrip("/")
    head, _, tail = base.rpartition("/")
    if tail.isdigit():
        base = head
    db_url = f"{base}/{random.randint(1, 15)}"
    redis.Redis.from_url(db_url).flushdb()
    return db_url


@pytest.fixture(scope="session")
def shared_envs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundle environments are built once per session, not per test."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def settings(database_url: str, redis_url: str, moto: MotoServer, tmp_path: Path,
             shared_envs_dir: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url,
                    redis_url=_redis_db(redis_url), s3_endpoint_url=moto.url,
                    envs_dir=shared_envs_dir, chunk_size=8)


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALAKE_")}
    env.update({
        "DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
        "METALAKE_HOME": str(settings.home),
        "METALAKE_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "METALAKE_ENVS_DIR": str(settings.envs_path),
        "METALAKE_CHUNK_SIZE": str(settings.chunk_size),
        "METALAKE_VIDEO_FRAME_STRIDE": str(settings.video_frame_stride),
        "METALAKE_INFERENCE_PLATFORM": settings.inference_platform,
        "METALAKE_RECOVERY_INTERVAL": str(settings.recovery_interval),
        "METALAKE_INDEX_QUIET_SECONDS": str(settings.index_quiet_seconds),
        "METALAKE_INDEX_MIN_VECTORS": str(settings.index_min_vectors),
        "METALAKE_SANDBOX": settings.sandbox,
        "METALAKE_REQUIRE_SANDBOX": "1" if settings.require_sandbox else "0",
        "YOLO_OFFLINE": "1",
    })
    return env


@contextlib.contextmanager
def running_worker(settings: Settings, log_file: Path, extra_env: dict[str, str] | None = None
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """A worker consuming both queues until the block ends."""
    metalake = Path(sys.executable).parent / "metalake"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(metalake), "worker", "--pool", "solo", "--hostname", f"test-{os.getpid()}@%h"],
            env={**worker_env(settings), **(extra_env or {})}, stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + 60
    while b"ready." not in log_file.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log_file.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(settings, tmp_path / "worker.log") as process:
        yield process
