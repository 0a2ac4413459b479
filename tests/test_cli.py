"""The `metalake` command without a running engine: help, import cost, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import settings_table
from tests.fixtures.services import free_port


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def empty_home_env(tmp_path: Path) -> dict[str, str]:
    """An engine home where nothing runs, on ports nothing listens on."""
    env = {
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
    env.update(
        METALAKE_HOME=str(tmp_path / "home"),
        METALAKE_API_PORT=str(free_port()),
        METALAKE_PG_PORT=str(free_port()),
        METALAKE_REDIS_PORT=str(free_port()),
    )
    return env


def test_help_lists_every_setting_and_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for variable, _, _ in settings_table():
        for name in variable.split(" / "):
            assert name in result.stdout, f"{name} missing from `metalake --help`"
    for command in ("up", "down", "status", "worker", "api", "db", "ingest", "query", "keys"):
        assert f"  {command} " in result.stdout


def test_importing_the_cli_creates_nothing_and_stays_light() -> None:
    code = (
        "import json, sys\n"
        "import engine.cli\n"
        "heavy = ('sqlalchemy', 'celery', 'fastapi', 'psycopg', 'uvicorn', 'alembic')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_status_of_a_stopped_engine_says_so_and_exits_non_zero(
    empty_home_env: dict[str, str],
) -> None:
    result = run_cli("status", env=empty_home_env)
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in ("postgres", "redis", "api", "worker"):
        assert "stopped" in lines[name]
    assert "Traceback" not in result.stderr


def test_down_of_a_stopped_engine_is_a_no_op(empty_home_env: dict[str, str]) -> None:
    result = run_cli("down", env=empty_home_env)
    assert result.returncode == 0, result.stderr
    assert "nothing was running" in result.stdout


@pytest.mark.parametrize(
    "args", [("keys", "list"), ("keys", "create", "--scope", "read"), ("db", "upgrade")]
)
def test_database_commands_without_a_database_fail_in_one_line(
    empty_home_env: dict[str, str], args: tuple[str, ...]
) -> None:
    result = run_cli(*args, env=empty_home_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Cannot reach the embedded database")
    assert "metalake up" in result.stderr


@pytest.mark.parametrize(("command", "needs"), [("api", "DATABASE_URL"), ("worker", "REDIS_URL")])
def test_foreground_services_need_their_urls(
    empty_home_env: dict[str, str], command: str, needs: str
) -> None:
    result = run_cli(command, env=empty_home_env)
    assert result.returncode == 1
    assert needs in result.stderr
    assert "metalake up" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_values_are_usage_errors(empty_home_env: dict[str, str]) -> None:
    result = run_cli("keys", "create", "--scope", "root", env=empty_home_env)
    assert result.returncode == 2
    assert "root" in result.stderr
    result = run_cli("query", "name ~ a", "--filter", "[1, 2]", env=empty_home_env)
    assert result.returncode == 2
    assert "JSON object" in result.stderr


def test_sdk_errors_are_one_line_without_traceback(empty_home_env: dict[str, str]) -> None:
    env = {
        **empty_home_env,
        "METALAKE_URL": f"http://127.0.0.1:{free_port()}",
        "METALAKE_API_KEY": "mlk_nothing",
    }
    for args in (("query", "width >= 1"), ("ingest", ".", "--collection", "c")):
        result = run_cli(*args, env=env)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: Cannot reach the engine")
        assert len(result.stderr.strip().splitlines()) == 1


def test_no_engine_at_all_is_a_clear_error(empty_home_env: dict[str, str]) -> None:
    result = run_cli("query", "width >= 1", env=empty_home_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "metalake up" in result.stderr
