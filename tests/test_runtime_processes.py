"""Pid files and detached processes: recognising ours, ignoring stale files, stopping cleanly."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from engine.config import Settings
from engine.runtime import supervisor
from engine.runtime.processes import ManagedProcess, pid_alive, write_private
from engine.runtime.state import managed_process
from tests.fixtures.services import free_port


@pytest.fixture
def process(tmp_path: Path) -> ManagedProcess:
    return ManagedProcess(
        "sleeper",
        tmp_path / "run" / "sleeper.pid",
        tmp_path / "logs" / "sleeper.log",
        tag=f"sleeper@{tmp_path}",
    )


def _sleep_argv(ignore_sigterm: bool = False) -> list[str]:
    code = "import signal, time\n"
    if ignore_sigterm:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('sleeping', flush=True)\ntime.sleep(60)\n"
    return [sys.executable, "-c", code]


def _wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    """Children of this test process must be reaped, or they linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_spawned_process_is_recognised_logged_and_stopped(
    process: ManagedProcess, tmp_path: Path
) -> None:
    pid = process.spawn(_sleep_argv(), env=dict(os.environ), cwd=tmp_path)
    try:
        assert process.pid() == pid
        assert process.recorded_pid() == pid
        assert stat.S_IMODE(process.pid_file.stat().st_mode) == 0o600
        assert os.getsid(pid) == pid  # detached: its own session
        deadline = time.monotonic() + 10
        while "sleeping" not in process.log_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert process.stop(timeout=10)
        _reap(pid)
        assert _wait_dead(pid)
        assert not process.pid_file.exists()
        assert process.pid() is None
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)


def test_a_process_ignoring_sigterm_is_killed_after_the_timeout(
    process: ManagedProcess, tmp_path: Path
) -> None:
    pid = process.spawn(_sleep_argv(ignore_sigterm=True), env=dict(os.environ), cwd=tmp_path)
    time.sleep(0.5)  # let it install its handler
    started = time.monotonic()
    assert process.stop(timeout=1)
    _reap(pid)
    assert _wait_dead(pid)
    assert time.monotonic() - started < 8


def test_pid_file_naming_an_unrelated_live_process_is_stale_and_never_signalled(
    process: ManagedProcess,
) -> None:
    write_private(process.pid_file, f"{os.getpid()}\n")  # this test process: alive, not ours
    assert process.recorded_pid() == os.getpid()
    assert process.pid() is None
    assert not process.stop(timeout=1)  # does not signal us; removes the stale file
    assert not process.pid_file.exists()


@pytest.mark.parametrize("content", ["", "not a pid", "999999999"])
def test_garbage_or_dead_pid_files_are_stale(process: ManagedProcess, content: str) -> None:
    write_private(process.pid_file, content)
    assert process.pid() is None
    assert process.clear_stale_pid_file()
    assert not process.pid_file.exists()


def test_a_process_of_another_home_is_not_ours(tmp_path: Path) -> None:
    mine = ManagedProcess("api", tmp_path / "a.pid", tmp_path / "a.log", tag="api@/home/one")
    other = ManagedProcess("api", tmp_path / "a.pid", tmp_path / "a.log", tag="api@/home/two")
    pid = mine.spawn(_sleep_argv(), env=dict(os.environ), cwd=tmp_path)
    try:
        assert mine.pid() == pid
        assert other.pid() is None
    finally:
        mine.stop(timeout=5)
        _reap(pid)


def test_write_private_is_atomic_and_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    write_private(target, "one")
    write_private(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]


def test_status_and_down_handle_stale_pid_files_of_a_stopped_engine(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", api_port=free_port(), pg_port=free_port(), redis_port=free_port()
    )
    for name in ("api", "worker"):
        write_private(managed_process(settings, name).pid_file, "999999999\n")
    entries = {entry.name: entry for entry in supervisor.status(settings)}
    assert set(entries) == set(supervisor.SERVICES)
    assert not any(entry.running or entry.healthy for entry in entries.values())
    assert "stale pid file" in entries["api"].detail
    assert supervisor.down(settings, timeout=1) == []
    assert not managed_process(settings, "api").pid_file.exists()
    assert not managed_process(settings, "worker").pid_file.exists()


def test_auto_shared_buffers_are_a_quarter_of_memory_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.runtime import postgres

    gib = 1 << 30
    assert postgres.shared_buffers("auto", memory=8 * gib) == "2048MB"
    assert postgres.shared_buffers("auto", memory=256 << 20) == "128MB"  # at least 128MB
    assert postgres.shared_buffers("auto", memory=256 * gib) == "8192MB"  # at most 8GB
    assert postgres.shared_buffers("3 GB") == "3GB"  # given: as given
    # A container's limit counts, not the machine's memory; "max" means no limit.
    limit, unlimited = tmp_path / "memory.max", tmp_path / "v1.limit"
    limit.write_text(f"{2 * gib}\n")
    unlimited.write_text("max\n")
    monkeypatch.setattr(postgres, "CGROUP_LIMITS", (unlimited, limit))
    assert postgres.available_memory() == 2 * gib
    assert postgres.shared_buffers("auto") == "512MB"
    monkeypatch.setattr(postgres, "CGROUP_LIMITS", (unlimited,))
    assert postgres.available_memory() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_a_generated_password_is_kept_owner_only_and_reused(tmp_path: Path) -> None:
    from engine.runtime.private import read_or_create_secret, read_secret

    path = tmp_path / "service.password"
    assert read_secret(path) is None
    password = read_or_create_secret(path)
    assert len(password) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == password == read_secret(path)
    assert read_or_create_secret(tmp_path / "other.password") != password
    path.chmod(0o644)  # copied or restored readable: made private again when read
    assert read_or_create_secret(path) == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://metalake:s3cr%40t@127.0.0.1:8471/metalake",
            "postgresql://metalake:***@127.0.0.1:8471/metalake",
        ),
        ("redis://:pw@127.0.0.1:8472/0", "redis://:***@127.0.0.1:8472/0"),
        (
            "postgresql+psycopg://u:p@db.internal/lake?sslmode=require",
            "postgresql+psycopg://u:***@db.internal/lake?sslmode=require",
        ),
        (
            "postgresql://postgres@127.0.0.1:8471/postgres",
            "postgresql://postgres@127.0.0.1:8471/postgres",
        ),
        ("redis://127.0.0.1:8472/0", "redis://127.0.0.1:8472/0"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    from engine.runtime.private import masked_url

    assert masked_url(url) == shown
