"""The SDK and CLI side of the registry: streaming a large bundle with flat memory, and
`metalake models register | list | show | delete` against the real API."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sdk import Client
from tests.fixtures.bundle_factory import make_bundle

BIG = 300 << 20

MEASURE = """
import json, resource, sys
from sdk import Client

folder, archive, url, key = sys.argv[1:5]
client = Client(url, key)
client.list_models()  # imports and connection warmed up before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
packed = client.register_model(folder, "big", "autotagging")
uploaded = client.register_model(archive, "big", "autotagging")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kb": after - before, "versions": [packed["version"],
                  uploaded["version"]], "uploaded_bytes": uploaded["size_bytes"]}))
"""


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        handle.truncate(size)


def _uncompressed_tar_gz(folder: Path, target: Path) -> None:
    """A .tar.gz whose gzip stores rather than compresses: the upload is as large as the bundle."""
    with (
        target.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        tar.add(folder, arcname=".")


@pytest.mark.slow
def test_a_300_mb_bundle_streams_without_growing_the_sdk_process(
    api_url: str, admin_key: str, tmp_path: Path
) -> None:
    folder = make_bundle(tmp_path / "big", weights=None)
    _sparse(folder / "model.pt", BIG)
    archive = tmp_path / "big.tar.gz"
    _uncompressed_tar_gz(folder, archive)
    assert archive.stat().st_size > BIG
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), str(archive), api_url, admin_key],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["versions"] == [1, 2]
    assert report["uploaded_bytes"] > BIG
    assert report["growth_kb"] < 40 * 1024, report  # the bundle is 300 MB


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "models", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def cli_env(api_url: str, admin_key: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALAKE_")}
    env.update(
        METALAKE_URL=api_url, METALAKE_API_KEY=admin_key, METALAKE_HOME=str(tmp_path / "cli-home")
    )
    return env


def test_cli_register_list_show_delete(
    cli_env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    registered = _cli(
        "register", str(bundle), "--name", "shapes", "--application", "auto_tagging", env=cli_env
    )
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.startswith("registered shapes@1 (autotagging, ")
    _cli("register", str(bundle), "-n", "shapes", "-a", "autotagging", env=cli_env)

    listed = _cli("list", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("shapes"))
    assert row.split()[:3] == ["shapes", "autotagging", "2"]
    assert json.loads(_cli("list", "--json", "-a", "embedding", env=cli_env).stdout) == []

    shown = _cli("show", "shapes@1", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert "versions: 1, 2" in shown.stdout
    assert "shapes@1" in shown.stdout
    assert "labels         3: circle, square, triangle" in shown.stdout
    assert "code/inference.py" in shown.stdout
    details = json.loads(_cli("show", "shapes", "--json", env=cli_env).stdout)
    assert details["version"]["reference"] == "shapes@2"

    deleted = _cli("delete", "shapes", env=cli_env)
    assert deleted.returncode == 0, deleted.stderr
    assert client.list_models() == []


def test_cli_refusals_are_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", inference="def model_fn(:\n")
    result = _cli(
        "register", str(bundle), "--name", "broken", "--application", "autotagging", env=cli_env
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: code/inference.py has a syntax error at line 1")
    assert "Traceback" not in result.stderr
    missing = _cli("show", "nothing", env=cli_env)
    assert missing.returncode == 1
    assert "No model named 'nothing'" in missing.stderr
