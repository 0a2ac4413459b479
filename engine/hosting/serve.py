"""The model host: one bundle served with the SageMaker inference container contract
(`GET /ping`, `POST /invocations`), with `decode_batch` and `default_output_fn` standing in for
the `input_fn` and `output_fn` a bundle leaves out. Run as `metalake-serve`, inside the bundle's
environment, so it imports the standard library only (numpy and Pillow for the default
input_fn). docs/bundles.md describes the contract.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import importlib.util
import io
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np

REQUIRED_HOOKS = ("model_fn", "predict_fn")
NPZ_CONTENT_TYPE = "application/x-npz"
JSON_CONTENT_TYPE = "application/json"
JSON_ACCEPTS = frozenset({JSON_CONTENT_TYPE, "application/*", "*/*"})
# Bodies of these types reach input_fn as str, as the SageMaker inference toolkit does.
TEXT_CONTENT_TYPES = frozenset(
    {"application/json", "application/jsonlines", "text/csv", "text/plain"}
)
TRACEBACK_FRAMES = 6

log = logging.getLogger("metalake.serve")


class HookFailed(Exception):
    """A hook of the bundle raised; `error` is the JSON error object sent to the client."""

    def __init__(self, stage: str, exc: BaseException, status: HTTPStatus) -> None:
        self.error = describe_exception(stage, exc)
        self.status = status
        super().__init__(self.error["message"])


def describe_exception(stage: str, exc: BaseException) -> dict[str, str]:
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename != __file__
    ][-TRACEBACK_FRAMES:]  # the bundle's frames
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError):
        message += " (list the package in code/requirements.txt)"
    return {
        "code": "model_error",
        "stage": stage,
        "message": message,
        "traceback": "".join(traceback.format_list(frames)),
    }


class Bundle:
    """The hooks of one bundle's inference.py and the model its `model_fn` returned."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.state = "loading"  # -> "ready" | "failed"
        self.error: dict[str, str] | None = None
        self.load_seconds: float | None = None
        self._hooks: dict[str, Callable[..., Any]] = {}
        self._model: Any = None
        self._lock = threading.Lock()  # one request at a time

    def load(self) -> None:
        """Import inference.py and run `model_fn` once. A failure is kept for `/ping`."""
        started = time.monotonic()
        stage = "import inference.py"
        try:
            module = import_inference(self.model_dir / "code")
            self._hooks = hooks_of(module)
            stage = "model_fn"
            self._model = self._hooks["model_fn"](str(self.model_dir))
        except Exception as exc:
            self.error = describe_exception(stage, exc)
            self.state = "failed"
            log.error(
                "loading the model failed in %s:\n%s",
                stage,
                "".join(traceback.format_exception(exc)),
            )
            return
        self.load_seconds = time.monotonic() - started
        self.state = "ready"
        log.info("model ready in %.2f s", self.load_seconds)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """(response body, its content type); raises HookFailed."""
        media_type = content_type.split(";")[0].strip().lower()
        request: bytes | str = body
        if media_type in TEXT_CONTENT_TYPES:
            try:
                request = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HookFailed("decode request", exc, HTTPStatus.BAD_REQUEST) from exc
        with self._lock:
            data = self._call("input_fn", HTTPStatus.BAD_REQUEST, request, content_type)
            prediction = self._call(
                "predict_fn", HTTPStatus.INTERNAL_SERVER_ERROR, data, self._model
            )
            result = self._call("output_fn", HTTPStatus.INTERNAL_SERVER_ERROR, prediction, accept)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
            # (body, content type), as SageMaker's output_fn may return
            result, accept = result[0], str(result[1])
        try:
            return encode_result(result), accept
        except (TypeError, ValueError) as exc:
            raise HookFailed("output_fn", exc, HTTPStatus.INTERNAL_SERVER_ERROR) from exc

    def _call(self, name: str, status: HTTPStatus, *args: Any) -> Any:
        try:
            return self._hooks[name](*args)
        except Exception as exc:
            log.error("%s raised:\n%s", name, "".join(traceback.format_exception(exc)))
            raise HookFailed(name, exc, status) from exc


def hooks_of(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The four hooks of an imported inference.py, the defaults filling a missing input_fn or
    output_fn. Raises AttributeError naming a missing model_fn or predict_fn."""
    missing = [name for name in REQUIRED_HOOKS if not callable(getattr(module, name, None))]
    if missing:
        raise AttributeError(
            f"code/inference.py does not define {', '.join(missing)}; a bundle "
            "defines model_fn and predict_fn (input_fn and output_fn are "
            "optional)"
        )
    defaults: dict[str, Callable[..., Any]] = {
        "input_fn": default_input_fn,
        "output_fn": default_output_fn,
    }
    hooks = {name: getattr(module, name) for name in REQUIRED_HOOKS}
    for name, default in defaults.items():
        hook = getattr(module, name, None)
        hooks[name] = hook if callable(hook) else default
    return hooks


def import_inference(code_dir: Path) -> ModuleType:
    path = code_dir / "inference.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; a bundle keeps its hooks in code/inference.py"
        )
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location("inference", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module  # pickling and multiprocessing find it by name
    spec.loader.exec_module(module)
    return module


def encode_result(result: Any) -> bytes:
    """output_fn may return bytes, a str (e.g. a JSON string) or a JSON-serialisable value;
    numpy arrays and tensors inside it are converted with `.tolist()`."""
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result)
    if isinstance(result, str):
        return result.encode("utf-8")
    return json.dumps(result, default=_jsonable, allow_nan=True).encode("utf-8")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    raise TypeError(
        f"output_fn returned a {type(value).__name__}, which is not JSON "
        "serialisable; return lists, dicts and numbers, or a JSON string"
    )


# -- the default hooks ----------------------------------------------------------------------
def default_input_fn(
    request_body: bytes | str, request_content_type: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The input_fn of a bundle that defines none: `decode_batch`."""
    return decode_batch(request_body, request_content_type)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    """The output_fn of a bundle that defines none: the prediction as JSON (dicts, lists,
    numbers; numpy arrays and tensors as lists). Raises ValueError when `accept` takes no
    JSON."""
    accepted = {part.split(";")[0].strip().lower() for part in (accept or "*/*").split(",")}
    if not accepted & JSON_ACCEPTS:
        raise ValueError(f"unsupported accept type {accept!r}: use {JSON_CONTENT_TYPE}")
    return encode_result(prediction), JSON_CONTENT_TYPE


def decode_batch(body: bytes | str, content_type: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(images uint8 (N, H, W, 3) RGB, parameters) from the engine's `application/x-npz`
    request (`engine.hosting.contract.encode_batch`) or an `application/json` one,
    {"images": [base64 JPEG/PNG, ...], "parameters": {...}}. Raises ValueError saying what is
    wrong with the body."""
    import numpy as np  # only bundles that use the default input_fn need it

    media_type = content_type.split(";")[0].strip().lower()
    if media_type == NPZ_CONTENT_TYPE:
        if isinstance(body, str):
            raise ValueError(f"an {NPZ_CONTENT_TYPE} body must be bytes")
        if not body.startswith(b"PK"):  # np.load would try to unpickle anything else
            raise ValueError("the body is not a readable .npz archive (write it with np.savez)")
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as archive:
                if "images" not in archive.files:
                    raise ValueError(f"the npz body has no 'images' array ({archive.files})")
                images = archive["images"]
                text = str(archive["parameters"].item()) if "parameters" in archive.files else "{}"
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"the body is not a readable .npz archive: {exc}") from exc
        parameters = json.loads(text)
    elif media_type == JSON_CONTENT_TYPE:
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("images"), list):
            raise ValueError(
                'a JSON body must be {"images": [base64 JPEG/PNG, ...], "parameters": {...}}'
            )
        parameters = document.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError("'parameters' must be a JSON object")
        images = _decode_encoded_images(document["images"], parameters)
    else:
        raise ValueError(
            f"unsupported content type {content_type!r}; send "
            f"{NPZ_CONTENT_TYPE} (or {JSON_CONTENT_TYPE})"
        )
    if not isinstance(parameters, dict):
        raise ValueError("'parameters' must be a JSON object")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"'images' is {images.dtype} {images.shape}; expected uint8 (N, H, W, 3)")
    return images, parameters


def _decode_encoded_images(encoded: list[Any], parameters: dict[str, Any]) -> np.ndarray:
    import numpy as np
    from PIL import Image  # only the JSON form needs an image decoder

    resolution = parameters.get("input_resolution")
    arrays, sizes = [], []
    for index, text in enumerate(encoded):
        try:
            with Image.open(io.BytesIO(base64.b64decode(text, validate=True))) as opened:
                rgb = opened.convert("RGB")
        except (binascii.Error, TypeError, OSError) as exc:
            raise ValueError(f"images[{index}] is not a base64 JPEG/PNG: {exc}") from exc
        sizes.append([rgb.width, rgb.height])
        if resolution:
            rgb = rgb.resize((int(resolution[0]), int(resolution[1])))
        arrays.append(np.asarray(rgb, dtype=np.uint8))
    if not arrays:
        raise ValueError("'images' is empty")
    if len({a.shape for a in arrays}) > 1:
        raise ValueError("the images differ in size; set parameters.input_resolution [w, h]")
    parameters.setdefault("original_sizes", sizes)
    return np.stack(arrays)


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], bundle: Bundle, default_accept: str) -> None:
        self.bundle = bundle
        self.default_accept = default_accept
        super().__init__(address, _Handler)


class UnixModelServer(ModelServer):
    """The same server on a Unix socket: how the engine talks to a host in a box with no
    network of its own."""

    address_family = socket.AF_UNIX

    def __init__(self, path: str, bundle: Bundle, default_accept: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.bundle = bundle
        self.default_accept = default_accept
        ThreadingHTTPServer.__init__(self, path, _Handler)  # type: ignore[arg-type]

    def server_bind(self) -> None:
        # HTTPServer.server_bind reads a (host, port) pair; a socket path has neither
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "model-host", 0

    def get_request(self) -> tuple[socket.socket, Any]:
        request, _ = self.socket.accept()
        return request, ("model-host", 0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "metalake-serve"

    @property
    def bundle(self) -> Bundle:
        return cast(ModelServer, self.server).bundle

    def do_GET(self) -> None:
        if self.path == "/ping":
            bundle = self.bundle
            if bundle.state == "ready":
                self._send_json(HTTPStatus.OK, {"status": "ready"})
            else:
                self._send_json(
                    HTTPStatus.SERVICE_UNAVAILABLE, {"status": bundle.state, "error": bundle.error}
                )
        elif self.path == "/execution-parameters":  # SageMaker batch transform asks for this
            self._send_json(
                HTTPStatus.OK,
                {
                    "MaxConcurrentTransforms": 1,
                    "BatchStrategy": "MULTI_RECORD",
                    "MaxPayloadInMB": 6,
                },
            )
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _error("not_found", f"no route {self.path}"))

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._send_json(HTTPStatus.NOT_FOUND, _error("not_found", f"no route {self.path}"))
            return
        body = self._read_body()
        bundle = self.bundle
        if bundle.state != "ready":
            error = bundle.error or _error("not_ready", "the model is still loading")["error"]
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": error})
            return
        content_type = self.headers.get("Content-Type") or "application/json"
        accept = self.headers.get("Accept") or "*/*"
        if accept.strip() == "*/*":
            accept = cast(ModelServer, self.server).default_accept
        started = time.monotonic()
        try:
            payload, payload_type = bundle.invoke(body, content_type, accept)
        except HookFailed as exc:
            self._send_json(exc.status, {"error": exc.error})
            return
        log.info(
            "invocation: %d bytes in, %d bytes out, %.3f s",
            len(body),
            len(payload),
            time.monotonic() - started,
        )
        self._send(HTTPStatus.OK, payload, payload_type)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send_json(self, status: HTTPStatus, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode("utf-8"), "application/json")

    def _send(self, status: HTTPStatus, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="metalake-serve",
        description="Serve a model bundle with the SageMaker inference container contract "
        "(GET /ping, POST /invocations).",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")),
        help="the bundle directory, holding code/inference.py "
        "(default: $SM_MODEL_DIR or /opt/ml/model)",
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 (a container's server)
        help="address to bind (default 0.0.0.0; the engine uses 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")),
        help="port (default: $SAGEMAKER_BIND_TO_PORT or 8080; 0 = any free)",
    )
    parser.add_argument(
        "--port-file", type=Path, help="write the bound port to this file once listening"
    )
    parser.add_argument("--unix-socket", help="answer on this Unix socket instead of --host/--port")
    parser.add_argument(
        "--parent-pid", type=int, help="exit when this process (the engine worker) is gone"
    )
    parser.add_argument(
        "--parent-fd",
        type=int,
        help="exit when this inherited pipe closes (the engine worker is gone; "
        "works where the worker's pid is not visible)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser.parse_args(argv)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            log.warning("the engine process %d is gone; stopping", parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _watch_pipe(fd: int) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    log.warning("the engine process is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s serve[%(process)d]: %(message)s",
    )
    bundle = Bundle(args.model_dir.resolve())
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
    server: ModelServer
    if args.unix_socket:
        server = UnixModelServer(args.unix_socket, bundle, default_accept)
        port, where = 0, args.unix_socket
    else:
        server = ModelServer((args.host, args.port), bundle, default_accept)
        port = server.server_address[1]
        where = f"{args.host}:{port}"
    if args.port_file:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(args.port_file)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    stop = threading.Event()
    threading.Thread(target=server.serve_forever, args=(0.1,), name="http", daemon=True).start()
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid, stop), daemon=True).start()
    if args.parent_fd is not None:
        threading.Thread(target=_watch_pipe, args=(args.parent_fd,), daemon=True).start()
    log.info("serving %s on %s", bundle.model_dir, where)
    try:
        bundle.load()
        stop.wait()
    finally:
        log.info("stopping")
        stop.set()
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
