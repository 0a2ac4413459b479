"""The model host as the worker uses it: real host processes, started, reused, failing and
replaced; the worker (this process) lives on through all of it."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from PIL import Image

from engine.config import Settings
from engine.errors import (
    ModelCodeError,
    ModelHostCrashed,
    ModelHostError,
    ModelHostOutOfMemory,
    ModelHostTimeout,
    ModelLoadFailed,
)
from engine.hosting.contract import EmbeddingOutput, TagPrediction, encode_batch, validate_outputs
from engine.hosting.host import HostManager

pytestmark = pytest.mark.integration  # real host processes

BUNDLES = Path(__file__).parent / "bundles"
NPZ = "application/x-npz"

MakeManager = Callable[..., HostManager]


@pytest.fixture
def make_manager(tmp_path: Path) -> Iterator[MakeManager]:
    managers: list[HostManager] = []

    def make(**settings: Any) -> HostManager:
        defaults: dict[str, Any] = {
            "home": tmp_path / "home",
            "host_memory_limit_mb": 0,
            "host_start_timeout": 30,
            "host_request_timeout": 30,
        }
        manager = HostManager.from_settings(Settings(**{**defaults, **settings}))
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


def _body(n: int = 4, **parameters: Any) -> bytes:
    images = [np.full((24, 32, 3), (i * 60, 20, 10), np.uint8) for i in range(n)]
    return encode_batch(
        images,
        {
            "application": "autotagging",
            "confidence_threshold": 0.5,
            "input_resolution": [32, 24],
            "original_sizes": [[320, 240]] * n,
            **parameters,
        },
    )


def _invoke(
    manager: HostManager,
    bundle: str,
    body: bytes,
    *,
    key: str | None = None,
    content_type: str = NPZ,
    timeout: float | None = None,
) -> bytes:
    bundle_dir = BUNDLES / bundle
    requirements = (bundle_dir / "code" / "requirements.txt").read_text()
    return manager.invoke(
        key or f"{bundle}@1",
        bundle_dir,
        requirements,
        body,
        content_type,
        "application/json",
        timeout=timeout,
    )


def _tags(payload: bytes, n: int) -> list[dict[str, Any]]:
    outcomes = validate_outputs("autotagging", payload, n)
    assert all(o.ok and isinstance(o.output, TagPrediction) for o in outcomes), outcomes
    return list(json.loads(payload))


def _reaped(pid: int) -> bool:
    """Gone, not a zombie: the manager waited for its child."""
    return not psutil.pid_exists(pid)


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _marked(marker: str) -> bool:
    """Whether a live process has `marker` on its command line."""
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []) and not _dead(process.pid):
            return True
    return False


def _serving_pid(host_pid: int) -> int:
    """The process running serve.py: the host itself, or the deepest process of its box."""
    tree = [psutil.Process(host_pid), *psutil.Process(host_pid).children(recursive=True)]
    (serving,) = [
        p
        for p in tree
        if any(part.endswith("serve.py") for part in p.cmdline()) and not p.children()
    ]
    return serving.pid


def _wait(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_host_is_started_invoked_with_a_batch_and_reused(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    manager = make_manager()
    first = _tags(_invoke(manager, "echo", _body(4)), 4)
    assert [o["boxes"][0][5] for o in first] == [1, 0, 0, 0]
    (info,) = manager.running()
    assert info.version_key == "echo@1"
    assert info.pid != os.getpid()
    assert info.sandboxed
    assert info.pid != first[0]["pid"]  # its own PID namespace
    assert info.log_file == tmp_path / "home" / "logs" / "hosts" / "echo@1.log"
    assert "model ready" in info.log_file.read_text()

    second = _tags(_invoke(manager, "echo", _body(2)), 2)
    assert second[0]["host_id"] == first[0]["host_id"]  # the same host, model_fn ran once
    assert second[0]["calls"] == 2

    encoded = []
    for color in ((0, 0, 255), (0, 255, 0)):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), color).save(buffer, format="JPEG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    payload = _invoke(
        manager, "echo", json.dumps({"images": encoded}).encode(), content_type="application/json"
    )
    assert [o["boxes"][0][5] for o in _tags(payload, 2)] == [2, 1]


def test_an_exception_in_predict_fn_fails_the_call_and_the_host_lives_on(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    with pytest.raises(ModelCodeError) as caught:
        _invoke(manager, "echo", _body(2, mode="raise"))
    assert str(caught.value).startswith(
        "predict_fn of echo@1 raised RuntimeError: predict_fn was told to fail"
    )
    assert caught.value.details["stage"] == "predict_fn"
    assert "inference.py" in caught.value.details["traceback"]
    assert len(manager.running()) == 1
    assert _tags(_invoke(manager, "echo", _body(1)), 1)[0]["calls"] == 2  # the same host


def test_a_failing_model_fn_is_reported(make_manager: MakeManager) -> None:
    manager = make_manager()
    with pytest.raises(
        ModelLoadFailed,
        match=re.escape(
            "model_fn failed for broken@1: FileNotFoundError: weights.pt is missing from model"
        ),
    ):  # /opt/ml/model
        _invoke(manager, "broken", b"")
    assert manager.running() == []
    # the version is immutable: the next batch gets the same error at once, without a new host
    with pytest.raises(ModelLoadFailed, match=r"weights\.pt is missing from model") as again:
        _invoke(manager, "broken", b"")
    assert "remembered from" in again.value.message
    log_file = again.value.details["log_file"]
    assert Path(log_file).read_text().count("starting the model host of broken@1") == 1


def test_a_host_killed_mid_request_fails_the_batch_and_is_replaced(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    old = manager.ensure_started("echo@1", BUNDLES / "echo", "")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            _invoke(manager, "echo", _body(2, mode="sleep", seconds=30))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)  # the request is in predict_fn
    os.kill(_serving_pid(old.pid), signal.SIGKILL)  # as the kernel's OOM killer would
    thread.join(10)
    (error,) = errors
    assert isinstance(error, ModelHostCrashed)
    assert "the model host of echo@1 was killed by signal SIGKILL while running the batch" in str(
        error
    )
    assert "last lines of" in str(error)
    assert "model ready" in str(error)
    assert _reaped(old.pid)

    again = _tags(_invoke(manager, "echo", _body(1)), 1)  # transparently a new host
    assert again[0]["calls"] == 1
    assert manager.running()[0].pid != old.pid
    with pytest.raises(ModelHostCrashed, match="exited with code 3 while running the batch"):
        _invoke(manager, "echo", _body(1, mode="exit"))


def test_a_hung_host_times_out_and_its_process_group_is_killed(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    manager = make_manager()
    old = manager.ensure_started("echo@1", BUNDLES / "echo", "")
    marker = f"child-of-{tmp_path.name}"
    started = time.monotonic()
    with pytest.raises(
        ModelHostTimeout, match=r"the model host of echo@1 did not answer within 1 s"
    ):
        _invoke(manager, "echo", _body(1, mode="sleep", child_marker=marker), timeout=1)
    assert time.monotonic() - started < 5
    assert _reaped(old.pid)  # killed and waited for: no zombie
    assert _wait(lambda: not _marked(marker))  # its child went too
    assert manager.running() == []
    assert _tags(_invoke(manager, "echo", _body(1)), 1)[0]["calls"] == 1  # a new host


def test_a_host_over_the_memory_limit_is_killed(make_manager: MakeManager) -> None:
    manager = make_manager(host_memory_limit_mb=250)
    old = manager.ensure_started("echo@1", BUNDLES / "echo", "")
    with pytest.raises(
        ModelHostOutOfMemory, match="the model host of echo@1 exceeded the memory limit of 250 MB"
    ):
        _invoke(manager, "echo", _body(1, mode="hog"))
    assert _reaped(old.pid)
    assert _tags(_invoke(manager, "echo", _body(1)), 1)[0]["calls"] == 1  # a new host


def test_memory_of_the_hosts_child_processes_counts(make_manager: MakeManager) -> None:
    # The child starts after the host's processes were first listed: found at a later look.
    manager = make_manager(host_memory_limit_mb=250)
    old = manager.ensure_started("echo@1", BUNDLES / "echo", "")
    with pytest.raises(ModelHostOutOfMemory, match="exceeded the memory limit of 250 MB"):
        _invoke(manager, "echo", _body(1, mode="child_hog"))
    assert _reaped(old.pid)


def test_a_slow_model_fn_hits_the_start_timeout(make_manager: MakeManager) -> None:
    manager = make_manager(host_start_timeout=0.3)
    with pytest.raises(ModelHostTimeout, match=r"was not ready within 0.3 s"):
        _invoke(manager, "slow_load", b"")
    assert manager.running() == []


def test_the_host_environment_carries_no_secrets(
    make_manager: MakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "DATABASE_URL": "postgresql://u:p@db/lake",
        "REDIS_URL": "redis://r:6379/0",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "METALAKE_API_KEY": "mlk_secret",
        "METALAKE_DATABASE_URL": "postgresql://x",
        "CELERY_BROKER_URL": "redis://b",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("METALAKE_WEIGHTS_DIR", "/weights")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("SOME_TOKEN", "t")
    manager = make_manager(host_env_allow="SOME_TOKEN, DATABASE_URL")

    (output,) = _tags(_invoke(manager, "echo", _body(1, mode="environ")), 1)

    visible = set(output["environ"])
    assert not visible & set(secrets), visible & set(secrets)
    assert {"METALAKE_WEIGHTS_DIR", "HF_HUB_OFFLINE", "LC_ALL", "PATH", "SOME_TOKEN"} <= visible
    assert not any(
        name.startswith(("AWS_", "METALAKE_")) for name in visible - {"METALAKE_WEIGHTS_DIR"}
    )
    assert output["PYTHONPATH"] == "/opt/ml/model/code"  # the bundle, where SageMaker has it


def test_idle_hosts_are_stopped(make_manager: MakeManager) -> None:
    manager = make_manager(host_idle_seconds=0.5)
    _invoke(manager, "echo", _body(1))
    (first,) = manager.running()
    assert _wait(lambda: manager.running() == [] and _reaped(first.pid), timeout=5)  # the watcher
    assert _tags(_invoke(manager, "echo", _body(1)), 1)[0]["calls"] == 1  # a new host


def test_hosts_of_different_versions_run_side_by_side(make_manager: MakeManager) -> None:
    manager = make_manager()
    first = _tags(_invoke(manager, "echo", _body(1), key="echo@1"), 1)[0]["host_id"]
    second = _tags(_invoke(manager, "echo", _body(1), key="echo@2"), 1)[0]["host_id"]
    assert first != second
    assert sorted(i.version_key for i in manager.running()) == ["echo@1", "echo@2"]
    a, b = (i.pid for i in sorted(manager.running(), key=lambda i: i.version_key))
    assert manager.stop("echo@1")
    assert not manager.stop("echo@1")
    assert _reaped(a)
    manager.close()
    assert _reaped(b)
    with pytest.raises(ModelHostError, match="closed"):
        _invoke(manager, "echo", _body(1))


def test_a_real_torch_model_runs_in_a_host(make_manager: MakeManager) -> None:
    manager = make_manager()
    payload = _invoke(manager, "torch_embed", _body(3))
    outcomes = validate_outputs("embedding", payload, 3, embedding_dim=32)
    assert all(o.ok for o in outcomes), outcomes
    vectors = [o.output.embedding for o in outcomes if isinstance(o.output, EmbeddingOutput)]
    assert len(vectors) == 3
    assert vectors[0] != vectors[2]


def test_hosts_exit_when_their_worker_dies(tmp_path: Path) -> None:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from engine.config import Settings
        from engine.hosting.host import HostManager
        manager = HostManager.from_settings(Settings(home=Path({str(tmp_path)!r})))
        info = manager.ensure_started("echo@1", Path({str(BUNDLES / "echo")!r}), "")
        print(info.pid, flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        host_pid = int(worker.stdout.readline())
        assert not _dead(host_pid)
    finally:
        worker.kill()  # SIGKILL: no chance to stop its hosts
        worker.wait()
    assert _wait(lambda: _dead(host_pid), timeout=5)
