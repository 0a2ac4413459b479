"""`metalake autotag | embed | annotate | similar | jobs ...` in-process against the real API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from engine.cli import app
from engine.cli_jobs import parse_prompts
from engine.config import Settings
from tests.fixtures.embedding_factory import make_files
from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import running_worker, settings, shared_envs_dir  # noqa: F401


@pytest.fixture
def cli(api_url: str, make_key: Callable[..., str]) -> Callable[..., Result]:
    env = {"METALAKE_URL": api_url, "METALAKE_API_KEY": make_key("admin", name="cli")}
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env, prog_name="metalake")

    return run


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_jobs_list_on_an_empty_engine(cli: Callable[..., Result]) -> None:
    result = cli("jobs", "list")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["0 jobs"]
    as_json = cli("jobs", "list", "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == []


def test_jobs_show_of_an_unknown_job_is_one_not_found_line(cli: Callable[..., Result]) -> None:
    line = _one_error_line(cli("jobs", "show", "999"))
    assert "No job has id 999" in line
    assert "999" in _one_error_line(cli("jobs", "cancel", "999"))


def test_unknown_platform_names_the_accepted_ones(
    cli: Callable[..., Result], session: Session
) -> None:
    make_files(session, "c", 1)
    line = _one_error_line(cli("autotag", "1", "--platform", "gpu-farm"))
    assert "gpu-farm" in line
    for platform in ("local", "aws", "use_env"):
        assert platform in line
    line = _one_error_line(cli("embed", "1", "--platform", "gpu-farm"))
    assert "'local', 'aws' or 'use_env'" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("autotag", "1", "--resolution", "300"), "WIDTHxHEIGHT"),
        (("autotag", "1", "--resolution", "0x300"), "positive"),
        (("autotag-lake", "image", "--resolution", "axb"), "WIDTHxHEIGHT"),
        (("autotag", "1", "--confidence", "1.5"), "--confidence"),
        (("autotag", "1", "--filter", "[1]"), "JSON object"),
        (("annotate", "1", "--type", "mask"), "polygon or box"),
        (("annotate", "1", "--prompt", "car="), "LABEL=DESCRIPTION"),
        (("similar",), "exactly one of --name or --vector-file"),
        (("similar", "--name", "a", "--vector-file", "v.json"), "exactly one"),
        (("jobs", "show", "abc"), "JOB_ID"),
    ],
)
def test_bad_argument_formats_are_usage_errors(
    cli: Callable[..., Result], args: tuple[str, ...], needle: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_prompts_parse_label_and_description() -> None:
    assert parse_prompts(["car=a red car", "dog"]) == [
        {"label": "car", "description": "a red car"},
        {"label": "dog", "description": "dog"},
    ]
    assert parse_prompts(None) is None


# Two pairs: 0 and 1 are close, 2 and 3 are close, and the pairs are orthogonal.
VECTORS = [[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.8, 0.6]]


def test_similar_finds_the_nearest_inserted_vector(
    cli: Callable[..., Result], client: Any, session: Session, tmp_path: Path
) -> None:
    names = make_files(session, "sim", 4)
    client.insert_image_embeddings_batch(
        [{"uniqueName": n, "embeddings": v} for n, v in zip(names, VECTORS, strict=True)],
        "ext-space",
        [4],
    )

    result = cli("similar", "--name", names[2], "--model", "ext-space", "-k", "3")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "3 items"
    score, name = lines[0].split()
    # The file itself is left out: its pair comes first.
    assert name == names[3]
    assert float(score) == pytest.approx(0.8, abs=1e-3)
    assert len(lines) == 4
    assert names[2] not in result.stdout

    vector_file = tmp_path / "v.json"
    vector_file.write_text(json.dumps([0.0, 1.0, 0.0, 0.0]))
    result = cli(
        "similar", "--vector-file", str(vector_file), "--model", "ext-space", "-k", "2", "--json"
    )
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)
    assert items[0]["unique_name"] == names[1]
    assert items[0]["score"] == pytest.approx(0.6, abs=1e-3)
    assert len(items) == 2

    # Restricted to a collection by id, and an unknown file is one error line.
    result = cli("similar", "--name", names[0], "--model", "ext-space", "--collection-id", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith(names[1])
    assert "nope.jpg" in _one_error_line(
        cli("similar", "--name", "nope.jpg", "--model", "ext-space")
    )

    # The import is a job: listed and shown.
    listed = cli("jobs", "list")
    assert listed.exit_code == 0, listed.stderr
    job_lines = listed.stdout.strip().splitlines()
    assert job_lines[-1] == "1 job"
    job_id = job_lines[0].split()[0]
    assert "embedding_import" in job_lines[0]
    shown = cli("jobs", "show", job_id)
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.startswith(f"job {job_id}  embedding_import")
    assert "4 total, 4 done, 0 failed" in shown.stdout


def test_vector_file_must_hold_numbers(cli: Callable[..., Result], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    result = cli("similar", "--vector-file", str(bad))
    assert result.exit_code == 2
    assert "list of numbers" in result.stderr
    result = cli("similar", "--vector-file", str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_autotag_jobs_cancel_wait_and_a_real_worker_run(
    cli: Callable[..., Result],
    client: Any,
    tmp_path: Path,
    settings: Settings,
    shapes_detector_bundle: Path,
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for index in range(6):
        scene(index, seed=3).image.save(folder / f"s{index:02d}.png")
    cid = str(client.upload_files_to_collection(folder, "image", "small"))
    client.register_model(shapes_detector_bundle, "yolo", "autotagging")
    assert "'nope'" in _one_error_line(
        cli("autotag", cid, "--model", "nope", "--platform", "local")
    )

    # No worker yet: the job stays queued, is cancelled, and waiting for it exits 1.
    submitted = cli(
        "autotag", cid, "--model", "yolo", "--resolution", "160x160", "--platform", "local"
    )
    assert submitted.exit_code == 0, submitted.stderr
    first = submitted.stdout.split()[2]
    assert submitted.stdout.startswith(f"submitted job {first} (queued")
    cancelled = cli("jobs", "cancel", first)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    waited = cli("jobs", "wait", first, "--no-progress")
    assert waited.exit_code == 1
    assert f"job {first}  autotagging  cancelled" in waited.stdout

    with running_worker(settings, tmp_path / "worker.log"):
        run = cli(
            "autotag",
            cid,
            "--model",
            "yolo",
            "--resolution",
            "160x160",
            "--confidence",
            "0.5",
            "--query",
            "",
            "--platform",
            "local",
            "--wait",
            "--timeout",
            "180",
        )
    assert run.exit_code == 0, (run.stdout, run.stderr)
    second = run.stdout.split()[2]
    assert f"job {second}  autotagging  succeeded" in run.stdout
    assert "6 total, 6 done, 0 failed" in run.stdout
    assert "yolo@1" in run.stdout

    listed = cli("jobs", "list").stdout.strip().splitlines()
    assert listed[-1] == "2 jobs"
    assert {line.split()[0] for line in listed[:-1]} == {first, second}
    # Nothing failed: retrying leaves the job as it was.
    retried = cli("jobs", "retry", second)
    assert retried.exit_code == 0, retried.stderr
    assert retried.stdout.split()[:3] == [second, "autotagging", "succeeded"]
    assert "999" in _one_error_line(cli("jobs", "retry", "999"))
