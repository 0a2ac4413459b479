"""Model code is boxed in: a hostile bundle run by a real worker reaches nothing of the engine.

The `hostile` bundle's `model_fn` tries each escape (the engine's key file and home, the
worker's environment, PostgreSQL/Redis/API/S3 over TCP, writing outside its tmp, other bundles,
signalling the worker) and reports what it reached, in its log and as tags. Boxed, it reaches
nothing; with the box forced off, the same probes reach the engine: they are real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import File, Tag
from engine.errors import ModelHostError
from engine.hosting.host import HostManager
from engine.hosting.sandbox import Sandbox
from tests.fixtures.services import MotoServer
from tests.fixtures.shapes import scene
from tests.fixtures.worker import running_worker, settings, shared_envs_dir  # noqa: F401

HOSTILE = Path(__file__).parent / "bundles" / "hostile"
PROBES = [
    "uid",
    "client_json",
    "engine_home",
    "user_home",
    "environ",
    "tcp",
    "write",
    "other_bundles",
    "signal",
]


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _hostile_bundle(
    tmp_path: Path,
    settings: Settings,
    worker_pid: int,
    api_url: str,
    moto: MotoServer,
) -> Path:
    """The hostile bundle, told where the engine keeps what it must not reach."""
    bundle = tmp_path / "hostile"
    shutil.copytree(HOSTILE, bundle)
    drop = tmp_path / "drop"  # open to anyone: only what the box hides keeps it out
    drop.mkdir(mode=0o777)
    drop.chmod(0o777)
    targets = {
        "engine_uid": os.getuid(),
        "client_json": str(settings.client_file),
        "engine_home": str(settings.home),
        "user_home": str(_user_home(tmp_path)),
        "ports": [
            _port(settings.database_url or ""),
            _port(settings.redis_url or ""),
            _port(api_url),
            moto.port,
        ],
        "writable_places": [str(drop), str(settings.home), "/"],
        "worker_pid": worker_pid,
    }
    (bundle / "targets.json").write_text(json.dumps(targets))
    return bundle


def _user_home(tmp_path: Path) -> Path:
    """The worker's $HOME, with cloud credentials and a cache as a real user's has."""
    home = tmp_path / "user-home"
    if not home.exists():
        (home / ".aws").mkdir(parents=True)
        (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = s\n")
        (home / ".cache" / "torch").mkdir(parents=True)
    return home


def _prepare_engine_home(settings: Settings) -> None:
    """What a running engine's home holds: the admin key file, and another model's bundle."""
    settings.client_file.parent.mkdir(parents=True, exist_ok=True)
    settings.client_file.write_text(json.dumps({"url": "http://127.0.0.1:1", "api_key": "k"}))
    settings.client_file.chmod(0o600)
    decoy = settings.bundle_cache_path / ("0" * 64) / "code"
    decoy.mkdir(parents=True)
    (decoy / "inference.py").write_text("SECRET_WEIGHTS = 'another model'\n")


def _run_hostile_job(
    client: Any,
    settings: Settings,
    tmp_path: Path,
    api_url: str,
    moto: MotoServer,
    worker: subprocess.Popen[bytes],
) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        scene(index, seed=11).image.save(folder / f"h{index}.png")
    cid = client.upload_files_to_collection(folder, "image", "hostile_lake")
    bundle = _hostile_bundle(tmp_path, settings, worker.pid, api_url, moto)
    client.register_model(bundle, "hostile", "autotagging")
    job = client.auto_tag_collection(cid, "hostile", (64, 64), 0.5, None, None, "local")
    final = client.wait_for_job(job["job_id"], timeout=180, progress=False)
    log = (settings.host_logs_dir / "hostile@1.log").read_text()
    (line,) = [line for line in log.splitlines() if line.startswith("HOSTILE-REPORT ")]
    return final, json.loads(line.removeprefix("HOSTILE-REPORT "))


def _machine_tags(session: Session) -> dict[str, set[str]]:
    session.expire_all()
    tags: dict[str, set[str]] = {}
    for name, tag in session.execute(
        select(File.unique_name, Tag.name)
        .join(Tag, Tag.file_id == File.id)
        .where(Tag.source == "machine")
    ):
        tags.setdefault(name, set()).add(tag)
    return tags


def test_a_hostile_bundle_reaches_nothing(
    client: Any,
    settings: Settings,
    session: Session,
    tmp_path: Path,
    api_url: str,
    moto: MotoServer,
) -> None:
    assert Sandbox.probe(settings).boxed, Sandbox.probe(settings).reason
    _prepare_engine_home(settings)
    with running_worker(
        settings, tmp_path / "worker.log", {"HOME": str(_user_home(tmp_path))}
    ) as worker:
        final, report = _run_hostile_job(client, settings, tmp_path, api_url, moto, worker)

    assert "error" not in report, report.get("error")
    reached = {name: report[name]["detail"] for name in PROBES if report[name]["reached"]}
    assert reached == {}
    whoami = report["whoami"]
    assert whoami["uid"] == whoami["gid"] == settings.sandbox_uid != os.getuid()
    assert report["tmp_writable"]  # its private tmp works
    assert final["status"] == "succeeded", final
    assert final["done"] == 3
    assert final["warnings"] == []
    tags = _machine_tags(session)
    assert set(tags) == {f"hostile_lake_h{i}.png" for i in range(3)}
    assert all(found == {"contained"} for found in tags.values()), tags


def test_unboxed_hosts_are_reported_and_the_probes_are_real(
    client: Any,
    settings: Settings,
    session: Session,
    tmp_path: Path,
    api_url: str,
    moto: MotoServer,
) -> None:
    """The box forced off (as on a machine without namespaces): the job says so, and the
    same bundle reaches the engine's files, environment and services."""
    unboxed = settings.model_copy(update={"sandbox": "off"})
    _prepare_engine_home(unboxed)
    with running_worker(
        unboxed, tmp_path / "worker.log", {"HOME": str(_user_home(tmp_path))}
    ) as worker:
        final, report = _run_hostile_job(client, unboxed, tmp_path, api_url, moto, worker)

    assert final["warnings"] == ["model code is NOT sandboxed: METALAKE_SANDBOX=off"]
    reached = {name for name in PROBES if report[name]["reached"]}
    assert reached == set(PROBES), report
    tags = _machine_tags(session)
    assert all(
        {"contained", "escaped_client_json", "escaped_tcp"} <= found for found in tags.values()
    ), tags


@pytest.mark.integration  # starts a host process
def test_without_bubblewrap_hosts_run_unboxed_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    unboxable = Settings(home=tmp_path / "home", host_start_timeout=30)
    with HostManager.from_settings(unboxable) as manager:
        assert not manager.sandbox.boxed
        assert manager.sandbox.warning == (
            "model code is NOT sandboxed: bubblewrap (bwrap) is "
            "not installed; install the Debian package "
            "bubblewrap"
        )
        info = manager.ensure_started("echo@1", Path(__file__).parent / "bundles" / "echo", "")
        assert not info.sandboxed
        assert "model code is NOT sandboxed" in info.log_file.read_text()


def test_require_sandbox_refuses_to_run_unboxed_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    strict = Settings(home=tmp_path / "home", require_sandbox=True)
    with HostManager.from_settings(strict) as manager, pytest.raises(ModelHostError) as refused:
        manager.ensure_started("echo@1", Path(__file__).parent / "bundles" / "echo", "")
    assert (
        "refusing to run the model code of echo@1: model code is NOT sandboxed: "
        "bubblewrap (bwrap) is not installed" in refused.value.message
    )
    assert "METALAKE_REQUIRE_SANDBOX" in refused.value.message
    assert not (tmp_path / "home" / "logs" / "hosts" / "echo@1.log").exists()  # nothing ran


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("auto", "model code is sandboxed: bubblewrap, uid 62000"),
        ("off", "model code is NOT sandboxed: METALAKE_SANDBOX=off"),
    ],
)
def test_status_says_whether_model_code_is_sandboxed(
    tmp_path: Path, mode: str, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALAKE_")}
    env.update({"METALAKE_HOME": str(tmp_path / "home"), "METALAKE_SANDBOX": mode})
    metalake = Path(sys.executable).parent / "metalake"
    result = subprocess.run(
        [str(metalake), "status"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    sandbox_lines = [line for line in result.stdout.splitlines() if line.startswith("sandbox")]
    assert len(sandbox_lines) == 1, result.stdout + result.stderr
    assert expected in sandbox_lines[0]
