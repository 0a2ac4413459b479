"""What the fault-injection tests (tests/test_faults.py) are made of: `metalake worker`
processes that can be killed whole, a model bundle whose batches wait at a gate the test opens
and closes, tiny images, and polling with deadlines.

The gate is how a test reaches "mid-job" without sleeping: while the gate is closed, every
batch that reaches the bundle's `predict_fn` waits there (after logging a `start` line), so the
test knows which chunks are in flight when it injects the fault; `allow(n)` lets n through.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml
from PIL import Image

from engine.config import Settings
from tests.worker import worker_env

T = TypeVar("T")

BUNDLE_CODE = '''\
"""Fault-test bundle: one box per image (or a small embedding); waits at the GATE file."""

import fcntl
import io
import json
import os
import time

import numpy as np

GATE = {gate!r}
LOG = {log!r}
NAME = {name!r}
CLASS_ID = {class_id!r}
CONFIDENCE = {confidence!r}
EMBEDDING_DIM = {embedding_dim!r}


def _log(event, count):
    line = json.dumps({{"event": event, "model": NAME, "pid": os.getpid(), "n": count,
                       "t": time.time()}})
    with open(LOG, "a") as handle:
        handle.write(line + "\\n")


def _pass_gate():
    """No gate file: go. Otherwise wait for a token (the file holds how many may pass)."""
    while True:
        try:
            with open(GATE, "r+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                tokens = int(handle.read().strip() or 0)
                if tokens > 0:
                    handle.seek(0)
                    handle.truncate()
                    handle.write(str(tokens - 1))
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)


def model_fn(model_dir):
    return {{}}


def input_fn(request_body, request_content_type):
    with np.load(io.BytesIO(request_body), allow_pickle=False) as archive:
        return archive["images"], json.loads(str(archive["parameters"].item()))


def predict_fn(input_data, model):
    images, parameters = input_data
    _log("start", len(images))
    _pass_gate()
    outputs = []
    for image in images:
        height, width = image.shape[:2]
        if EMBEDDING_DIM:
            mean = float(image.mean()) / 255
            outputs.append({{"embedding": [mean + i for i in range(EMBEDDING_DIM)]}})
        else:
            outputs.append({{"boxes": [[0.0, 0.0, float(width), float(height), CONFIDENCE,
                                        CLASS_ID]]}})
    _log("end", len(images))
    return outputs


def output_fn(prediction, accept):
    return json.dumps(prediction)
'''

LABELS = ("circle", "square", "triangle")


@dataclass
class Gate:
    """Where the fault-test bundles' batches wait inside predict_fn: no file, every batch
    passes; a file holding N, N more batches pass (each takes one token), the rest wait."""

    path: Path

    def _set(self, tokens: int) -> None:
        with self.path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(str(tokens))

    def close(self) -> None:
        self._set(0)

    def allow(self, batches: int) -> None:
        self._set(batches)

    def open(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class BatchLog:
    """The `start` / `end` lines the fault-test bundles append, one per model request."""

    path: Path

    def events(self, event: str | None = None, *, after: float = 0.0) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [r for r in rows if (event is None or r["event"] == event) and r["t"] > after]


def gated_bundle(root: Path, gate: Gate, log: BatchLog, *, name: str,
                 labels: tuple[str, ...] = LABELS, class_id: int = 0, confidence: float = 0.9,
                 embedding_dim: int = 0) -> Path:
    """An autotagging bundle (or, with `embedding_dim`, an embedding one) in the seed layout."""
    code = root / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(BUNDLE_CODE.format(
        gate=str(gate.path), log=str(log.path), name=name, class_id=class_id,
        confidence=confidence, embedding_dim=embedding_dim))
    (code / "requirements.txt").write_text("")
    if embedding_dim:
        (root / "metalake.yaml").write_text(yaml.safe_dump({"embedding_dim": embedding_dim}))
    else:
        (root / "label_list.yaml").write_text(yaml.safe_dump(list(labels)))
        (root / "model.pt").write_bytes(b"no weights needed")
    return root


def tiny_images(folder: Path, count: int) -> Path:
    """`count` 24x16 PNGs, each a different colour."""
    folder.mkdir(parents=True)
    for index in range(count):
        colour = (index * 37 % 256, index * 91 % 256, index * 53 % 256)
        Image.new("RGB", (24, 16), colour).save(folder / f"img{index:03d}.png")
    return folder


def wait_for(check: Callable[[], T], *, timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Worker:
    """One `metalake worker` (prefork pool: a main process and its pool child), in a process
    group of its own so that it can be killed whole."""

    name: str
    log_file: Path
    process: subprocess.Popen[bytes]
    pool_pids: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, name: str, settings: Settings, log_file: Path,
              extra_env: Mapping[str, str]) -> Worker:
        metalake = Path(sys.executable).parent / "metalake"
        # The fault bundle signals through files in the test's folder (the gate, the batch
        # log), which a sandboxed host cannot see: these tests are about recovery.
        env = {**worker_env(settings), "METALAKE_SANDBOX": "off", **extra_env}
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [str(metalake), "worker", "--pool", "prefork", "--concurrency", "1",
                 "--hostname", f"{name}@%h"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(name, log_file, process)

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            return b"ready." in self.log_file.read_bytes()

        wait_for(ready, timeout=timeout, what=f"worker {self.name} to be ready", interval=0.2)
        self.pool_pids = {child.pid for child in psutil.Process(self.process.pid).children()}

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def pids(self) -> set[int]:
        """The main process and its pool processes (not the model hosts, which run in their
        own sessions and stop when their parent is gone)."""
        return {self.process.pid, *self.pool_pids}

    def kill(self) -> None:
        """`kill -9` the whole worker: every process of its group, at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()  # warm shutdown: finishes the task in hand
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
