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
from urllib.parse import urlsplit

import httpx
import pytest

from engine.runtime.private import masked_url
from engine.runtime.processes import pid_alive, port_in_use
from tests.fixtures.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SERVICES = ("postgres", "redis", "api", "worker")


class Engine:
    """A `metalake up` engine in its own home, driven through the CLI."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.up_output = ""
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.api_port, self.pg_port, self.redis_port = sorted(ports)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "DATABASE_URL",
                "REDIS_URL",
                "METALAKE_DATABASE_URL",
                "METALAKE_REDIS_URL",
                "METALAKE_URL",
                "METALAKE_API_KEY",
            }
        }
        self.env.update(
            METALAKE_HOME=str(home),
            METALAKE_API_PORT=str(self.api_port),
            METALAKE_PG_PORT=str(self.pg_port),
            METALAKE_REDIS_PORT=str(self.redis_port),
            METALAKE_PG_SHARED_BUFFERS="192MB",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def cli(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> tuple[int, dict[str, list[str]]]:
        result = self.cli("status")
        rows = {
            line.split()[0]: line.split()
            for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in SERVICES
        }
        return result.returncode, rows

    def pids(self) -> dict[str, int]:
        _, rows = self.status()
        return {name: int(row[1]) for name, row in rows.items() if row[1].isdigit()}

    def client_json(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.home / "client.json").read_text())
        return data

    def secret(self, name: str) -> str:
        """A generated password: postgres/metalake.password, redis.password, ..."""
        return (self.home / name).read_text().strip()

    def database_url(self, user: str = "metalake", database: str = "metalake") -> str:
        password = self.secret(
            "postgres/superuser.password" if user == "postgres" else f"postgres/{user}.password"
        )
        return f"postgresql://{user}:{password}@127.0.0.1:{self.pg_port}/{database}"


def hba_methods(pg_hba: Path) -> list[str]:
    """The authentication method of each rule in a pg_hba.conf."""
    return [
        line.split()[-1]
        for line in pg_hba.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    # Not under pytest's basetemp: as root, PostgreSQL runs as another user, and a second
    # pytest session resets /tmp/pytest-of-<user> to mode 0700, cutting it off its data.
    root = Path(tempfile.mkdtemp(prefix="metalake-cli-test-"))
    engine = Engine(root / "home")
    result = engine.cli("up")
    engine.up_output = result.stdout + result.stderr
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
    engine: Engine,
) -> None:
    import psycopg

    # shared_preload_libraries: shown to superusers only
    with psycopg.connect(engine.database_url("postgres")) as connection:
        settings = dict(
            connection.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
                "('shared_buffers', 'shared_preload_libraries')"
            ).fetchall()
        )
    assert int(settings["shared_buffers"].removesuffix("8kB")) * 8 == 192 * 1024
    assert "pg_prewarm" in settings["shared_preload_libraries"]


def test_the_embedded_postgres_refuses_connections_without_the_password(engine: Engine) -> None:
    import psycopg

    socket_dir = engine.home / "postgres" / "data"
    refused = [
        f"postgresql://metalake@127.0.0.1:{engine.pg_port}/metalake",
        f"postgresql://postgres@127.0.0.1:{engine.pg_port}/postgres",
        f"postgresql://metalake:wrong@127.0.0.1:{engine.pg_port}/metalake",
        f"postgresql://postgres:wrong@127.0.0.1:{engine.pg_port}/postgres",
        f"postgresql://postgres@/postgres?host={socket_dir}&port={engine.pg_port}",  # Unix socket
    ]
    for url in refused:
        with pytest.raises(
            psycopg.OperationalError, match=r"no password supplied|password authentication failed"
        ):
            psycopg.connect(url, connect_timeout=5).close()
    assert set(hba_methods(socket_dir / "pg_hba.conf")) == {"scram-sha-256"}


def test_the_engine_connects_as_a_role_that_owns_its_database_and_is_no_superuser(
    engine: Engine,
) -> None:
    import psycopg

    state = json.loads((engine.home / "run" / "state.json").read_text())
    assert state["database_url"] == engine.database_url()  # what the API and workers use
    with psycopg.connect(engine.database_url()) as connection:
        role = connection.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        owner = connection.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        tables: dict[str, str] = dict(
            connection.execute(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        )
        vector = connection.execute(
            "SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    assert role == ("metalake", False, False, False, False)
    assert owner == ("metalake",)
    assert {"files", "alembic_version"} <= set(tables)  # migrated by the role itself
    assert set(tables.values()) == {"metalake"}, tables
    assert vector == ("postgres",)  # pgvector is not trusted: the superuser created it


def test_the_embedded_redis_refuses_commands_without_the_password(engine: Engine) -> None:
    import psutil
    import redis

    def ask(*commands: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", engine.redis_port), timeout=5) as sock:
            sock.sendall(b"".join(command + b"\r\n" for command in commands))
            time.sleep(0.2)
            return sock.recv(4096)

    password = engine.secret("redis.password")
    assert ask(b"PING").startswith(b"-NOAUTH")
    assert ask(b"AUTH wrong", b"PING").startswith(b"-WRONGPASS")
    assert ask(f"AUTH {password}".encode(), b"PING") == b"+OK\r\n+PONG\r\n"
    state = json.loads((engine.home / "run" / "state.json").read_text())
    assert state["redis_url"] == f"redis://:{password}@127.0.0.1:{engine.redis_port}/0"
    assert redis.Redis.from_url(state["redis_url"]).ping()
    # from its config file, not its command line, which every local user may read
    server = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if f"127.0.0.1:{engine.redis_port}" in " ".join(p.info["cmdline"] or [])
    )
    assert password not in " ".join(server.cmdline())


def test_the_home_its_folders_and_the_files_with_secrets_or_logs_are_private(
    engine: Engine,
) -> None:
    import grp

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    # As root, PostgreSQL runs as its own system user, which must pass through the home and
    # the logs folder (0710, its group); as anyone else it runs as us (0700).
    if os.geteuid() == 0:
        passed_through = 0o710
        group = grp.getgrgid((engine.home / "postgres").stat().st_gid).gr_name
        assert group == "embedded_postgres"
    else:
        passed_through = 0o700
    for folder in ("", "logs", "postgres"):
        assert mode(engine.home / folder) == passed_through, folder
    for folder in ("run", "redis", "postgres/data"):
        assert mode(engine.home / folder) == 0o700, folder
    secrets = [
        "client.json",
        "run/state.json",
        "postgres/superuser.password",
        "postgres/metalake.password",
        "redis.password",
        "redis.conf",
    ]
    logs = [str(p.relative_to(engine.home)) for p in (engine.home / "logs").glob("*.log")]
    assert {"logs/api.log", "logs/worker.log", "logs/postgres.log", "logs/redis.log"} <= set(logs)
    redis_files = [str(p.relative_to(engine.home)) for p in (engine.home / "redis").iterdir()]
    assert "redis/appendonly.aof" in redis_files
    for name in secrets + logs + redis_files:
        assert mode(engine.home / name) == 0o600, name
    assert not list((engine.home / "postgres").glob(".initdb*"))  # initdb's copy is gone


def test_no_password_shows_in_logs_or_command_output(engine: Engine) -> None:
    passwords = [
        engine.secret(name)
        for name in ("postgres/superuser.password", "postgres/metalake.password", "redis.password")
    ]
    status = engine.cli("status")
    assert status.returncode == 0, status.stdout
    assert f"postgresql://metalake:***@127.0.0.1:{engine.pg_port}/metalake" in status.stdout
    assert f"redis://:***@127.0.0.1:{engine.redis_port}/0" in status.stdout
    shown = [engine.up_output, status.stdout + status.stderr]
    shown += [p.read_text(errors="replace") for p in (engine.home / "logs").rglob("*.log")]
    for password in passwords:
        assert not [text for text in shown if password in text]


def test_the_sdk_finds_the_local_engine_and_its_admin_key(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdk import Client

    client_file = engine.home / "client.json"
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
    assert engine.client_json()["url"] == engine.url
    monkeypatch.setenv("METALAKE_HOME", str(engine.home))
    with Client() as client:
        assert client.url == engine.url
        assert client.health()["status"] == "ok"
        keys = httpx.get(
            f"{engine.url}/api/v1/keys",  # admin-only
            headers={"Authorization": f"Bearer {client.api_key}"},
        )
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
    assert (
        httpx.get(
            f"{engine.url}/api/v1/keys", headers={"Authorization": "Bearer mlk_wrong"}
        ).status_code
        == 401
    )
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
    ingested = engine.cli(
        "ingest", str(tmp_path), "--collection", "cli_demo", "--meta", '{"camera": "cam 1"}'
    )
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


def test_up_makes_a_home_from_before_passwords_require_them() -> None:
    """A home initialised with trust authentication and migrated by the superuser, as `up`
    left it before passwords: `up` gives the superuser a password, requires one from every
    connection, and hands the database and its tables to the engine's role."""
    import psycopg

    from engine.db.migrate import upgrade
    from engine.runtime.postgres import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="metalake-cli-test-"))
    engine = Engine(root / "home")
    pg = EmbeddedPostgres(
        engine.home / "postgres" / "data",
        port=engine.pg_port,
        log_path=engine.home / "logs" / "postgres.log",
        home=engine.home,
    )
    try:
        pg.start()
        with psycopg.connect(pg.superuser_url("metalake"), autocommit=True) as conn:
            conn.execute("REASSIGN OWNED BY metalake TO postgres")
            conn.execute("DROP OWNED BY metalake")
            conn.execute("DROP ROLE metalake")
        upgrade(pg.superuser_url("metalake"))
        hba = pg.data_dir / "pg_hba.conf"
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            conn.execute("ALTER ROLE postgres PASSWORD NULL")
            hba.write_text(
                "".join(
                    line.replace("scram-sha-256", "trust") if not line.startswith("#") else line
                    for line in hba.read_text().splitlines(keepends=True)
                )
            )
            conn.execute("SELECT pg_reload_conf()")
        for secret in (pg.superuser_password_file, pg.password_file):
            secret.unlink()
        assert set(hba_methods(hba)) == {"trust"}
        pg.stop()

        result = engine.cli("up")
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert set(hba_methods(hba)) == {"scram-sha-256"}
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{engine.pg_port}/postgres")
        with psycopg.connect(engine.database_url()) as connection:
            owners = {
                owner
                for (owner,) in connection.execute(
                    "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' UNION "
                    "SELECT pg_get_userbyid(datdba) FROM pg_database "
                    "WHERE datname = current_database()"
                )
            }
        assert owners == {"metalake"}
        code, rows = engine.status()
        assert code == 0, rows
    finally:
        engine.cli("down")
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_up_with_external_services_starts_only_the_api_and_worker(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
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
        # the URLs' passwords are shown masked and logged nowhere
        passwords = [urlsplit(url).password for url in (database_url, redis_url)]
        assert all(passwords), "the test services have passwords"
        assert rows["postgres"][-1] == masked_url(database_url)
        assert rows["redis"][-1] == masked_url(redis_url)
        assert ":***@" in rows["postgres"][-1]
        status = engine.cli("status")
        shown = [result.stdout, result.stderr, status.stdout, status.stderr]
        shown += [p.read_text(errors="replace") for p in (engine.home / "logs").rglob("*.log")]
        for password in passwords:
            assert not [text for text in shown if str(password) in text]
    finally:
        stopped = engine.cli("down")
    assert stopped.returncode == 0
    assert sorted(line.split()[0] for line in stopped.stdout.splitlines()) == ["api", "worker"]
    assert postgres_problem(database_url) is None  # the external services were left alone
    assert redis_problem(redis_url) is None


def test_up_refuses_a_port_taken_by_another_program(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
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
