"""docker-compose.yml describes the production layout and validates with `docker compose config`
(where the docker client and its compose plugin exist; no docker engine is needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"


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
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
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
        assert env["REDIS_URL"] == "redis://redis:6379/0"
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
