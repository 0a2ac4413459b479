"""Bundle requirements: installed once into a cached environment that sees the engine's
packages; a failed install is reported and not cached."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.config import Settings
from engine.errors import ModelEnvironmentFailed
from engine.hosting.contract import encode_batch, validate_outputs
from engine.hosting.environments import MARKER, EnvironmentCache, normalize_requirements
from engine.hosting.host import HostManager
from engine.hosting.hostenv import install_environ

BUNDLE = Path(__file__).parent / "bundles" / "needs_tabulate"


def test_requirements_are_normalised() -> None:
    text = "# comment\n\nTabulate  # trailing\nnumpy>=1 \\\n  ; python_version>'3'\ntabulate\n"
    assert normalize_requirements(text) == ["Tabulate", "numpy>=1 ; python_version>'3'", "tabulate"]
    assert normalize_requirements("# only comments\n\n   \n") == []


def test_no_requirements_need_no_environment(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs", environ={})
    assert cache.python_for("# nothing\n") == Path(sys.executable)
    assert not (tmp_path / "envs").exists()


def _invoke(manager: HostManager) -> dict[str, object]:
    body = encode_batch([np_image()], {"application": "embedding"})
    payload = manager.invoke(
        "needs_tabulate@1",
        BUNDLE,
        (BUNDLE / "code" / "requirements.txt").read_text(),
        body,
        "application/x-npz",
    )
    (outcome,) = validate_outputs("embedding", payload, 1)
    assert outcome.ok, outcome
    (output,) = json.loads(payload)
    assert isinstance(output, dict)
    return output


def np_image():  # type: ignore[no-untyped-def]
    import numpy as np

    return np.zeros((8, 8, 3), np.uint8)


@pytest.mark.integration  # pip installs into a new environment
def test_an_extra_requirement_is_installed_once_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", host_memory_limit_mb=0)
    started = time.monotonic()
    with HostManager.from_settings(settings) as manager:
        output = _invoke(manager)
    first_seconds = time.monotonic() - started

    boxed_file = Path(str(output["tabulate"]))
    assert boxed_file.is_relative_to("/opt/metalake/env")  # where the box shows the env
    assert settings.envs_path == tmp_path / "home" / "envs"
    (env_dir,) = [d for d in settings.envs_path.iterdir() if d.is_dir()]
    tabulate_file = env_dir / boxed_file.relative_to("/opt/metalake/env")
    assert tabulate_file.is_file()
    marker = env_dir / MARKER
    assert json.loads(marker.read_text())["requirements"] == ["numpy", "tabulate"]
    site_packages = tabulate_file.parents[1]
    assert not list(site_packages.glob("numpy*"))  # the engine's numpy, not a second one
    built_at = marker.stat().st_mtime_ns

    started = time.monotonic()
    with HostManager.from_settings(settings) as manager:  # another worker, same machine
        again = _invoke(manager)
    second_seconds = time.monotonic() - started

    assert again["tabulate"] == output["tabulate"]
    assert marker.stat().st_mtime_ns == built_at
    assert second_seconds < first_seconds / 2, (first_seconds, second_seconds)


@pytest.mark.integration  # pip installs into a new environment
def test_concurrent_builds_share_one_environment(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs", environ=install_environ(os.environ))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.python_for("tabulate\n")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 2
    assert results[0] == results[1]
    env_dirs = [p for p in (tmp_path / "envs").iterdir() if p.is_dir()]
    assert len(env_dirs) == 1
    assert (env_dirs[0] / MARKER).is_file()
    log = env_dirs[0].with_name(env_dirs[0].name + ".log").read_text()
    assert log.count("Successfully installed tabulate") == 1


@pytest.mark.integration  # pip installs into a new environment
def test_a_failed_install_is_reported_and_not_cached(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs", environ=install_environ(os.environ))
    for _ in range(2):  # the second call tries again instead of using a half-built env
        with pytest.raises(ModelEnvironmentFailed) as caught:
            cache.python_for("./no-such-directory\n", workdir=tmp_path)
        message = str(caught.value)
        assert "pip could not install the bundle's code/requirements.txt (exit code" in message
        assert "no-such-directory" in message.split("Last lines of", 1)[1]
        assert [p for p in (tmp_path / "envs").iterdir() if p.is_dir()] == []
