"""The serving program on its own: the SageMaker contract, as a real subprocess."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from engine.hosting.contract import TagPrediction, encode_batch, validate_outputs

pytestmark = pytest.mark.integration  # the serving program as a subprocess

BUNDLES = Path(__file__).parent / "bundles"
NPZ = {"Content-Type": "application/x-npz", "Accept": "application/json"}

Serve = Callable[[Path], str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start `python -m engine.hosting.serve` for a bundle; its URL. Stopped with SIGTERM."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(bundle: Path) -> str:
        port_file = tmp_path / f"port-{len(processes)}"
        log = (tmp_path / f"serve-{len(processes)}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.hosting.serve",
                "--model-dir",
                str(bundle),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return f"http://127.0.0.1:{port_file.read_text().strip()}"

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0  # a clean stop


def _wait_ready(url: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url + "/ping")
        if response.status_code == 200 or response.json().get("status") == "failed":
            return response
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


def _batch(n: int = 4, **parameters: object) -> bytes:
    images = [np.full((24, 32, 3), (i * 50, 10, 200 - i * 40), np.uint8) for i in range(n)]
    return encode_batch(
        images,
        {
            "application": "autotagging",
            "confidence_threshold": 0.5,
            "input_resolution": [32, 24],
            **parameters,
        },
    )


def _bundle(tmp_path: Path, source: str) -> Path:
    code = tmp_path / "bundle" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    (code / "requirements.txt").write_text("")
    return code.parent


def test_ping_answers_503_while_model_fn_runs_then_200(serve: Serve) -> None:
    url = serve(BUNDLES / "slow_load")
    first = httpx.get(url + "/ping")
    assert first.status_code == 503
    assert first.json()["status"] == "loading"
    assert _wait_ready(url).status_code == 200
    response = httpx.post(url + "/invocations", content=b"x", headers=NPZ)
    assert response.json() == [{"embedding": [1.0, 2.0, 3.0]}]  # output_fn's list, as JSON


def test_a_batch_of_four_images_round_trips(serve: Serve) -> None:
    url = serve(BUNDLES / "echo")
    _wait_ready(url)
    response = httpx.post(url + "/invocations", content=_batch(4), headers=NPZ)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    outcomes = validate_outputs("autotagging", response.content, 4)
    assert all(o.ok for o in outcomes), outcomes
    first = outcomes[0].output
    assert isinstance(first, TagPrediction)
    assert (first.boxes[0].x2, first.boxes[0].y2) == (32, 24)  # the pixel space it was sent
    assert [
        o.output.boxes[0].class_id
        for o in outcomes  # type: ignore[union-attr]
    ] == [2, 2, 2, 0]
    parameters = response.json()[0]["parameters"]
    assert parameters["input_resolution"] == [32, 24]


def test_json_requests_with_base64_images(serve: Serve) -> None:
    url = serve(BUNDLES / "echo")
    _wait_ready(url)
    encoded = []
    for color in ((255, 0, 0), (0, 255, 0)):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 8), color).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    response = httpx.post(
        url + "/invocations", json={"images": encoded, "parameters": {"application": "autotagging"}}
    )
    assert response.status_code == 200, response.text
    outcomes = validate_outputs("autotagging", response.text, 2)
    assert [o.output.boxes[0].class_id for o in outcomes] == [0, 1]  # type: ignore[union-attr]


def test_errors_in_the_bundle_are_reported_and_the_server_goes_on(serve: Serve) -> None:
    url = serve(BUNDLES / "echo")
    _wait_ready(url)

    bad_input = httpx.post(
        url + "/invocations", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert bad_input.status_code == 400
    error = bad_input.json()["error"]
    assert error["code"] == "model_error"
    assert error["stage"] == "input_fn"
    assert error["message"] == "ValueError: unsupported content type 'text/csv'"

    failing = httpx.post(url + "/invocations", content=_batch(2, mode="raise"), headers=NPZ)
    assert failing.status_code == 500
    error = failing.json()["error"]
    assert (error["stage"], error["message"]) == (
        "predict_fn",
        "RuntimeError: predict_fn was told to fail",
    )
    assert 'inference.py", line' in error["traceback"]
    assert "serve.py" not in error["traceback"]  # the bundle's frames only

    assert httpx.post(url + "/invocations", content=_batch(2), headers=NPZ).status_code == 200
    assert httpx.get(url + "/nope").status_code == 404


def test_a_failed_model_fn_is_reported_by_ping(serve: Serve) -> None:
    url = serve(BUNDLES / "broken")
    ping = _wait_ready(url)
    assert ping.status_code == 503
    error = ping.json()["error"]
    assert error["stage"] == "model_fn"
    assert error["message"] == "FileNotFoundError: weights.pt is missing from broken"
    invocation = httpx.post(url + "/invocations", content=b"{}", headers=NPZ)
    assert invocation.status_code == 503
    assert invocation.json()["error"] == error


def test_missing_hooks_and_imports_are_named(serve: Serve, tmp_path: Path) -> None:
    missing_hook = _bundle(
        tmp_path / "a",
        """
        def input_fn(request_body, request_content_type):
            return request_body
        def output_fn(prediction, accept):
            return prediction
    """,
    )
    error = _wait_ready(serve(missing_hook)).json()["error"]
    assert error["stage"] == "import inference.py"
    assert "does not define model_fn, predict_fn" in error["message"]

    missing_package = _bundle(tmp_path / "b", "import not_a_package_metalake_has\n")
    error = _wait_ready(serve(missing_package)).json()["error"]
    assert error["message"] == (
        "ModuleNotFoundError: No module named "
        "'not_a_package_metalake_has' (list the package in "
        "code/requirements.txt)"
    )


def test_a_bundle_without_input_fn_and_output_fn_gets_the_defaults(
    serve: Serve, tmp_path: Path
) -> None:
    bundle = _bundle(
        tmp_path,
        """
        def model_fn(model_dir):
            return None
        def predict_fn(input_data, model):
            images, parameters = input_data
            return [{"shape": images.shape[1:], "mean": image.mean(axis=(0, 1)),
                     "parameters": parameters} for image in images]
    """,
    )
    url = serve(bundle)
    _wait_ready(url)
    response = httpx.post(url + "/invocations", content=_batch(2), headers=NPZ)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    first = response.json()[0]
    assert first["shape"] == [24, 32, 3]
    assert first["mean"] == [0.0, 10.0, 200.0]
    assert first["parameters"]["input_resolution"] == [32, 24]

    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (255, 0, 0)).save(buffer, format="PNG")
    document = {"images": [base64.b64encode(buffer.getvalue()).decode()], "parameters": {}}
    response = httpx.post(url + "/invocations", json=document)
    assert response.status_code == 200, response.text
    assert response.json()[0]["parameters"] == {"original_sizes": [[16, 8]]}

    bad_body = httpx.post(url + "/invocations", content=b"not npz", headers=NPZ)
    assert bad_body.status_code == 400
    assert bad_body.json()["error"]["stage"] == "input_fn"
    assert "not a readable .npz archive" in bad_body.json()["error"]["message"]
    no_json = httpx.post(
        url + "/invocations", content=_batch(1), headers={**NPZ, "Accept": "text/csv"}
    )
    assert no_json.status_code == 500
    assert no_json.json()["error"]["stage"] == "output_fn"
    assert "unsupported accept type" in no_json.json()["error"]["message"]


def test_output_fn_values_are_serialised(serve: Serve, tmp_path: Path) -> None:
    bundle = _bundle(
        tmp_path,
        """
        import numpy as np
        def model_fn(model_dir):
            return None
        def input_fn(request_body, request_content_type):
            return request_body
        def predict_fn(input_data, model):
            return np.arange(3, dtype=np.float32)
        def output_fn(prediction_output, content_type):
            return [{"embedding": prediction_output, "n": np.int64(3), "accept": content_type}]
    """,
    )
    url = serve(bundle)
    _wait_ready(url)
    response = httpx.post(url + "/invocations", content=b"", headers={"Accept": "*/*"})
    assert response.json() == [{"embedding": [0.0, 1.0, 2.0], "n": 3, "accept": "application/json"}]


def test_the_serving_program_imports_no_engine_services() -> None:
    code = (
        "import sys, engine.hosting.serve\n"
        "heavy = ['sqlalchemy', 'celery', 'psycopg', 'engine.db', 'engine.config', "
        "'pydantic', 'numpy', 'boto3']\n"
        "print([name for name in heavy if name in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.replace("'", '"')) == []
