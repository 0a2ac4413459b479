"""Real services for the test session: embedded PostgreSQL + pgvector, Redis, a moto S3 server.

`make test` starts nothing by hand: the session fixtures here start each service on free
loopback ports under one temporary directory and stop them at the end. Set TEST_DATABASE_URL /
TEST_REDIS_URL to run against external services instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_dir: Path) -> MotoServer:
        port = free_port()
        log = (log_dir / "moto.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        )
        server = cls(port=port, process=process)
        wait_for_http(server.url + "/moto-api/")
        return server

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
