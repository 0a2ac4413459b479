"""One model host process, as the manager sees it, and the HTTP calls it answers.

A host runs in its own process group and answers on a Unix socket; killing it kills the whole
group (the bundle's child processes too) and reaps it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from engine.errors import ModelCodeError, ModelHostError

LOG_TAIL_LINES = 20
# How often `tree_rss` looks for the host's child processes again: finding them reads every
# process's /proc entry, too costly for every memory check. The known processes' memory is read
# at every check.
CHILDREN_REFRESH = 2.0


class HostProcess:
    """One running host process."""

    def __init__(
        self,
        version_key: str,
        process: subprocess.Popen[bytes],
        log_file: Path,
        log_offset: int,
        socket_path: Path,
        parent_pipe: int | None = None,
        boxed: bool = False,
    ) -> None:
        self.version_key = version_key
        self.process = process
        self.log_file = log_file
        self.log_offset = log_offset
        self.socket_path = socket_path  # in a directory only the worker and the host share
        self._parent_pipe = parent_pipe  # our end: the host exits when it closes
        self.boxed = boxed  # run by bubblewrap, which exits with 128 + N for a signal N
        self.last_used = time.monotonic()
        self.lock = threading.Lock()  # one request at a time
        self.retired = False  # stopped or killed: callers holding it must get a new one
        self.killed: ModelHostError | None = None  # why we killed it, if we did
        self._tree: list[psutil.Process] = []
        self._tree_at = -CHILDREN_REFRESH

    def alive(self) -> bool:
        return self.process.poll() is None

    def tree_rss(self) -> int:
        """Resident memory of the host and its child processes (found again every
        `CHILDREN_REFRESH` seconds; one started since is counted from the next search)."""
        now = time.monotonic()
        if now - self._tree_at >= CHILDREN_REFRESH:
            try:
                root = psutil.Process(self.process.pid)
                self._tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                return 0
            self._tree_at = now
        total = 0
        for process in self._tree:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def kill(self, error: ModelHostError) -> None:
        """SIGKILL the host and every process below it, and reap it; `error` explains it
        later."""
        if self.killed is None:
            self.killed = error
        self.retired = True
        self._kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._release()

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM the serving program, then SIGKILL everything after `timeout`."""
        self.retired = True
        self._signal_tree(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_all()
            self.process.wait(10)
        self._kill_all()  # children the bundle left behind
        self._release()

    def _signal_tree(self, signum: int) -> None:
        # start_new_session made the host the leader of a group with its own pid; a boxed
        # host's program runs in a session of its own below it, so it is signalled by pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)
        for process in self._descendants():
            with contextlib.suppress(psutil.Error):
                process.send_signal(signum)

    def _kill_all(self) -> None:
        # the descendants first: once the outer process is gone they are no longer below it
        # (killing a boxed host's PID-namespace init also ends every process inside)
        descendants = self._descendants()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.kill()

    def _descendants(self) -> list[psutil.Process]:
        try:
            return list(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.Error:
            return []

    def _release(self) -> None:
        if self._parent_pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._parent_pipe)
            self._parent_pipe = None
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)

    def exit_description(self) -> str:
        code = self.process.returncode
        if code is None:
            return "stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by signal {signal.Signals(-code).name}"
        if self.boxed and code > 128:
            with contextlib.suppress(ValueError):
                return f"was killed by signal {signal.Signals(code - 128).name}"
        return f"exited with code {code}"

    def log_tail(self) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(self.log_offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:]) or "(the log is empty)"


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the host's Unix socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("model-host", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def post(
    path: Path, body: bytes, content_type: str, accept: str, timeout: float
) -> tuple[int, bytes]:
    connection = UnixConnection(path, timeout)
    try:
        connection.request(
            "POST",
            "/invocations",
            body=body,
            headers={"Content-Type": content_type, "Accept": accept},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ping(path: Path) -> tuple[int, dict[str, Any]]:
    connection = UnixConnection(path, 5)
    try:
        connection.request("GET", "/ping")
        response = connection.getresponse()
        status, payload = response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        connection.close()
    try:
        document = json.loads(payload)
    except ValueError:
        document = {}
    return status, document if isinstance(document, dict) else {}


def response_error(host: HostProcess, status: int, payload: bytes) -> ModelHostError:
    try:
        error = json.loads(payload)["error"]
    except (ValueError, KeyError, TypeError):
        error = {"message": payload[:500].decode(errors="replace")}
    key, log_file = host.version_key, str(host.log_file)
    if error.get("code") == "model_error":
        return ModelCodeError(
            f"{error.get('stage')} of {key} raised {error.get('message')} (traceback in "
            f"{log_file})",
            version_key=key,
            log_file=log_file,
            stage=error.get("stage"),
            traceback=error.get("traceback"),
        )
    return ModelHostError(
        f"the model host of {key} answered {status}: {error.get('message')}",
        version_key=key,
        log_file=log_file,
    )
