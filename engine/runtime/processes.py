"""Detached background processes tracked by pid files: spawn, recognise, stop.

A pid file alone is not trusted: after a crash or a reboot its pid may belong to another
program. A process counts as ours only if it is alive and carries the tag it was started with
in its environment (`METALAKE_PROCESS_TAG`, which names the process and its home directory,
so two engines with different homes never mistake each other's processes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

TAG_VARIABLE = "METALAKE_PROCESS_TAG"


@dataclass(frozen=True)
class ManagedProcess:
    """A background process of the embedded engine: its pid file, log file and marker."""

    name: str
    pid_file: Path
    log_file: Path
    tag: str  # set in its environment, to tell it from an unrelated process with the same pid

    def recorded_pid(self) -> int | None:
        """The pid in the pid file, whether or not that process still runs."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The pid of the running process, or None (no pid file, dead, or someone else's)."""
        pid = self.recorded_pid()
        if pid is None or not environment_has(pid, TAG_VARIABLE, self.tag):
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def clear_stale_pid_file(self) -> bool:
        """Remove the pid file if it does not name a running process of ours."""
        if self.pid_file.exists() and self.pid() is None:
            self.pid_file.unlink(missing_ok=True)
            return True
        return False

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> int:
        """Start detached (own session, stdio to the log file, mode 0600) and record the pid."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(log_fd, 0o600)
        with os.fdopen(log_fd, "ab") as log:
            log.write(
                f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}: "
                f"{' '.join(argv)}\n".encode()
            )
            log.flush()
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, TAG_VARIABLE: self.tag},
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        write_private(self.pid_file, f"{process.pid}\n")
        return process.pid

    def stop(self, *, timeout: float = 20) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL its whole process group.

        Returns whether a running process was stopped. The pid file is removed either way.
        """
        pid = self.pid()
        stopped = False
        if pid is not None:
            terminate(pid, timeout=timeout)
            stopped = True
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def exit_reason(self) -> str:
        """The last lines of the log, to explain why the process is not running."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log_file})"
        tail = "\n".join(lines[-15:])
        return f"last lines of {self.log_file}:\n{tail}"


def command_line_contains(pid: int, marker: str) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def environment_has(pid: int, name: str, value: str) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return bool(process.environ().get(name) == value)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def pid_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def terminate(pid: int, *, timeout: float = 20) -> None:
    """Ask `pid` to stop (SIGTERM); after `timeout`, SIGKILL it and its process group."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Children of a process that was started in its own session (prefork pool children,
    # uvicorn reloaders) must not outlive it.
    if pgid == pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def write_private(path: Path, text: str) -> None:
    """Write `text` atomically to `path`, readable by the owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
