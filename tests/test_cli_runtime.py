"""`metalake up | status | keys | down` with real processes: embedded PostgreSQL and Redis, the
API under uvicorn and a Celery worker, all started in the background under a temporary home."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.runtime.processes import pid_alive, port_in_use
from tests.services import free_port

pytestmark = pytest.mark.slow

SERVICES = ("postgres", "redis", "api", "worker")


class Engine:
    """A `metalake up` engine in its own home, driven through the CLI."""

    def __init__(self, home: Path) -> None:
        self.home = home
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.api_port, self.pg_port, self.redis_port = sorted(ports)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in {"DATABASE_URL", "REDIS_URL", "METALAKE_DATABASE_URL",
                                 "METALAKE_REDIS_URL", "METALAKE_URL", "METALAKE_API_KEY"}}
        self.env.update(METALAKE_HOME=str(home), METALAKE_API_PORT=str(self.api_port),
                        METALAKE_PG_PORT=str(self.pg_port),
                        METALAKE_REDIS_PORT=str(self.redis_port),
                        METALAKE_PG_SHARED_BUFFERS="192MB")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def cli(self, *args: str, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args],
                              env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout)

    def status(self) -> tuple[int, dict[str, list[str]]]:
        result = self.cli("status")
        rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
                if line.split() and line.split()[0] in SERVICES}
        return result.returncode, rows

    def pids(self) -> dict[str, int]:
        _, rows = self.status()
        return {name: int(row[1]) for name, row in rows.items() if row[1].isdigit()}

    def client_json(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.home / "client.json").read_text())
        return data


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    # Not under pytest's basetemp: as root, PostgreSQL runs as another user, and a second
    # pytest session resets /tmp/pytest-of-<user> to mode 0700, cutting it off its data.
    root = Path(tempfile.mkdtemp(prefix="metalake-cli-test-"))
    engine = Engine(root / "home")
    result = engine.cli("up")
    try:
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        yield engine
    finally:
        engine.cli("down")
        shutil.rmtree(root, ignore_errors=True)


def test_up_starts_four_healthy_processes_and_says_where(engine: Engine) -> None:
    code, rows = engine.status()
    assert code == 0, rows
    assert set(rows) == set(SERVICES)
    for name, row in rows.items():
        assert row[1].isdigit(), f"{name}: no pid in {row}"
        assert row[2:4] == ["running", "healthy"], f"{name}: {row}"
    assert (engine.home / "logs" / "api.log").exists()
    assert (engine.home / "logs" / "worker.log").exists()


def test_the_embedded_postgres_runs_with_the_configured_buffers_and_autoprewarm(
        engine: Engine) -> None:
    import psycopg

    url = f"postgresql://postgres@127.0.0.1:{engine.pg_port}/metalake"
    with psycopg.connect(url) as connection:
        settings = dict(connection.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
            "('shared_buffers', 'shared_preload_libraries')").fetchall())
    assert int(settings["shared_buffers"].removesuffix("8kB")) * 8 == 192 * 1024
    assert "pg_prewarm" in settings["shared_preload_libraries"]


def test_the_sdk_finds_the_local_engine_and_its_admin_key(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sdk import Client

    client_file = engine.home / "client.json"
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
    assert engine.client_json()["url"] == engine.url
    monkeypatch.setenv("METALAKE_HOME", str(engine.home))
    with Client() as client:
        assert client.url == engine.url
        assert client.health()["status"] == "ok"
        keys = httpx.get(f"{engine.url}/api/v1/keys",  # admin-only
                         headers={"Authorization": f"Bearer {client.api_key}"})
    assert keys.status_code == 200, keys.text
    assert any("admin" in key["scopes"] for key in keys.json())


def test_up_again_starts_nothing_and_keeps_the_key(engine: Engine) -> None:
    before, key = engine.pids(), engine.client_json()["api_key"]
    result = engine.cli("up")
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stdout
    assert result.stdout.count("already running") == 4
    assert engine.pids() == before
    assert engine.client_json()["api_key"] == key
    listed = engine.cli("keys", "list")
    assert listed.stdout.count("metalake up (admin)") == 1
    moved = engine.cli("up", METALAKE_API_PORT=str(free_port()))
    assert moved.returncode == 1
    assert "running with another configuration" in moved.stderr
    assert "metalake down" in moved.stderr
    assert engine.pids() == before


def test_keys_create_prints_a_key_that_authenticates_and_revoke_ends_it(engine: Engine) -> None:
    created = engine.cli("keys", "create", "--scope", "read", "--name", "reader")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(r"mlk_\S+", key), created.stdout
    key_id = re.search(r"API key (\d+)", created.stderr)
    assert key_id, created.stderr
    headers = {"Authorization": f"Bearer {key}"}
    # authenticated (not 401) but a read key may not manage keys (403)
    assert httpx.get(f"{engine.url}/api/v1/keys", headers=headers).status_code == 403
    assert httpx.get(f"{engine.url}/api/v1/keys",
                     headers={"Authorization": "Bearer mlk_wrong"}).status_code == 401
    revoked = engine.cli("keys", "revoke", key_id.group(1))
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(f"{engine.url}/api/v1/keys", headers=headers).status_code == 401
    missing = engine.cli("keys", "revoke", "999999")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: No API key with id 999999")


def test_ingest_and_query_through_the_cli(engine: Engine, tmp_path: Path) -> None:
    from PIL import Image

    for i, color in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (64 + i, 48), color).save(tmp_path / f"shape_{i}.png")
    ingested = engine.cli("ingest", str(tmp_path), "--collection", "cli_demo",
                          "--meta", '{"camera": "cam 1"}')
    assert ingested.returncode == 0, ingested.stderr
    assert "added 3" in ingested.stdout
    found = engine.cli("query", 'metadata.camera = "cam 1" AND width >= 65', "--json")
    assert found.returncode == 0, found.stderr
    names = sorted(item["uniqueName"] for item in json.loads(found.stdout))
    assert names == ["cli_demo_shape_1.png", "cli_demo_shape_2.png"]
    readable = engine.cli("query", "name ~ shape_0")
    assert "cli_demo_shape_0.png" in readable.stdout
    bad = engine.cli("query", "width >>= 3")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr


def test_up_with_external_services_starts_only_the_api_and_worker(
        database_url: str, redis_url: str, tmp_path: Path) -> None:
    from engine.runtime.checks import postgres_problem, redis_problem

    engine = Engine(tmp_path / "home")
    engine.env.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
    try:
        result = engine.cli("up")
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert "postgres" not in result.stdout
        assert "redis " not in result.stdout
        code, rows = engine.status()
        assert code == 0, rows
        assert rows["postgres"][1:4] == ["external", "running", "healthy"]
        assert rows["redis"][1:4] == ["external", "running", "healthy"]
        assert not (engine.home / "postgres").exists()
    finally:
        stopped = engine.cli("down")
    assert stopped.returncode == 0
    assert sorted(line.split()[0] for line in stopped.stdout.splitlines()) == ["api", "worker"]
    assert postgres_problem(database_url) is None  # the external services were left alone
    assert redis_problem(redis_url) is None


def test_up_refuses_a_port_taken_by_another_program(
        database_url: str, redis_url: str, tmp_path: Path) -> None:
    engine = Engine(tmp_path / "home")
    engine.env.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", engine.api_port))
        squatter.listen()
        result = engine.cli("up")
    assert result.returncode == 1
    assert f"Port {engine.api_port} (api) is used by another program" in result.stderr
    assert "METALAKE_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((engine.home / "run").glob("*.pid"))


def test_down_stops_everything_and_status_then_fails(engine: Engine) -> None:
    pids = engine.pids()
    assert set(pids) == set(SERVICES)
    result = engine.cli("down")
    assert result.returncode == 0, result.stderr
    for name in SERVICES:
        assert f"{name}" in result.stdout
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    for port in (engine.api_port, engine.pg_port, engine.redis_port):
        assert not port_in_use(port), port
    assert not list((engine.home / "run").glob("*.pid"))
    code, rows = engine.status()
    assert code != 0
    assert all(row[2] == "stopped" for row in rows.values()), rows
    again = engine.cli("down")
    assert again.returncode == 0
    assert "nothing was running" in again.stdout
