"""The API's gate (engine/api/gate.py) on a real uvicorn process: a request without a valid key
is answered 401 before its body is read (the process's memory stays flat under a 150 MB body;
a multipart upload leaves nothing on disk), and bodies over their route's limit are a 413."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from engine.config import Settings
from engine.storage import file_uri
from tests.fixtures.services import free_port, wait_for_http

API = "/api/v1"
MB = 1 << 20
REQUEST_MAX = 1 * MB
UPLOAD_MAX = 4 * MB
BIG = 150 * MB


@dataclass
class Server:
    url: str
    port: int
    process: psutil.Process
    tmp: Path  # the server's TMPDIR, where multipart parts would spill
    managed: Path  # its managed storage, where uploads are copied

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def open_files_under(self, folder: Path) -> list[str]:
        found = []
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(folder)):
                found.append(target)
        return found


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    """`uvicorn --factory engine.api.app:app_from_env` as `metalake up` runs it."""
    tmp, managed = tmp_path / "server-tmp", tmp_path / "managed"
    tmp.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALAKE_")}
    env.update(
        DATABASE_URL=str(settings.database_url),
        REDIS_URL=str(settings.redis_url),
        METALAKE_HOME=str(settings.home),
        TMPDIR=str(tmp),
        METALAKE_S3_ENDPOINT_URL=str(settings.s3_endpoint_url),
        METALAKE_MANAGED_STORAGE_URL=file_uri(managed),
        METALAKE_REQUEST_MAX_BYTES=str(REQUEST_MAX),
        METALAKE_UPLOAD_MAX_BYTES=str(UPLOAD_MAX),
        METALAKE_LOG_LEVEL="WARNING",
    )
    log = (tmp_path / "api.log").open("wb")
    popen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "engine.api.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + f"{API}/health")
        yield Server(
            url=url, port=port, process=psutil.Process(popen.pid), tmp=tmp, managed=managed
        )
    finally:
        popen.terminate()
        popen.wait(15)
        log.close()


def _head(port: int, path: str, headers: dict[str, str]) -> socket.socket:
    """A connection that has sent a POST's request line and headers, and nothing of its body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of the response on `sock`."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def _error_code(body: Any) -> str:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    code: str = body["error"]["code"]
    return code


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


class RssPeak:
    """The highest RSS of a process, sampled every 20 ms while in the `with` block."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = server.rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self.server.rss())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())


def test_no_valid_key_is_a_401_before_any_of_the_body_is_sent(server: Server) -> None:
    # Only the headers are sent: the answer comes without waiting for the 150 MB announced.
    for key in (None, "mlk_not-a-real-key"):
        for path in (
            f"{API}/collections/ingest",
            f"{API}/search/similar",
            f"{API}/collections/things/upload?content_type=image",
            f"{API}/models/m/versions?application=embedding",
            f"{API}/nowhere",
        ):
            with _head(
                server.port,
                path,
                {"Content-Type": "application/json", "Content-Length": str(BIG), **_auth(key)},
            ) as sock:
                status, headers, body = _response(sock, timeout=5)
            assert status == 401, (path, body)
            assert _error_code(body) == "unauthorized"
            assert headers["www-authenticate"] == "Bearer"
    # the open routes stay open
    assert httpx.get(server.url + f"{API}/health").status_code == 200
    assert httpx.get(server.url + "/openapi.json").status_code == 200
    assert httpx.get(server.url + "/docs").status_code == 200


def _send_body(sock: socket.socket, size: int, chunked: bool) -> int:
    """Send `size` bytes of a JSON-looking body (1 MiB writes); the bytes the server took."""
    piece = (b'{"entries": [' + b'"x",' * (MB // 4))[:MB]
    sent = 0
    try:
        while sent < size:
            if chunked:
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                sock.sendall(piece)
            sent += len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_150_mb_body_without_a_key_leaves_the_api_memory_flat(
    server: Server, chunked: bool
) -> None:
    for _ in range(3):  # warm up: imports, connections, the first request's allocations
        with _head(
            server.port,
            f"{API}/collections/ingest",
            {"Content-Type": "application/json", "Content-Length": "2"},
        ) as sock:
            sock.sendall(b"{}")
            assert _response(sock)[0] == 401
    before = server.rss()
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(BIG)}
    with (
        RssPeak(server) as rss,
        _head(
            server.port,
            f"{API}/collections/ingest",
            {"Content-Type": "application/json", **framing},
        ) as sock,
    ):
        sent = _send_body(sock, BIG, chunked)
        status, _, body = _response(sock)
    growth = rss.peak - before
    print(
        f"\nRSS before {before / MB:.1f} MB, peak {rss.peak / MB:.1f} MB "
        f"(+{growth / MB:.1f} MB) over a {sent / MB:.0f} MB body sent "
        f"({'chunked' if chunked else 'Content-Length'}), no key"
    )
    assert status == 401
    assert _error_code(body) == "unauthorized"
    assert sent == BIG
    assert growth < 20 * MB, f"the API process grew {growth / MB:.1f} MB"


def _multipart(size: int) -> tuple[bytes, str]:
    boundary = "metalakeboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="relative_paths"\r\n\r\n'
        f'a.jpg\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()
    body += os.urandom(size) + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_multipart_upload_without_a_key_writes_nothing(
    server: Server, make_key: Callable[..., str]
) -> None:
    body, content_type = _multipart(3 * MB)
    path = f"{API}/collections/things/upload?content_type=image"
    for key in (None, "mlk_not-a-real-key"):
        # half the body sent and the connection held open: answered already, nothing spooled
        with _head(
            server.port,
            path,
            {"Content-Type": content_type, "Content-Length": str(len(body)), **_auth(key)},
        ) as sock:
            sock.sendall(body[: len(body) // 2])
            status, _, answer = _response(sock, timeout=5)
            assert (status, _error_code(answer)) == (401, "unauthorized")
            assert server.open_files_under(server.tmp) == []
            assert _files_in(server.tmp) == []
        # the whole body sent
        response = httpx.post(
            server.url + path,
            content=body,
            timeout=30,
            headers={"Content-Type": content_type, **_auth(key)},
        )
        assert response.status_code == 401
        assert _files_in(server.tmp) == []
        assert _files_in(server.managed) == []
    # with a valid key the same upload is taken (so the checks above look where it goes)
    response = httpx.post(
        server.url + path,
        content=body,
        timeout=30,
        headers={"Content-Type": content_type, **_auth(make_key("write", name="uploader"))},
    )
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 0  # random bytes: recorded as a failure, not a file
    assert server.open_files_under(server.tmp) == []


def test_bodies_over_their_route_limit_are_a_413(
    server: Server, make_key: Callable[..., str]
) -> None:
    key = make_key("write", name="writer")
    ingest = f"{API}/collections/ingest"
    # declared too large: refused from the Content-Length, before any of the body is sent
    with _head(
        server.port,
        ingest,
        {"Content-Type": "application/json", "Content-Length": str(REQUEST_MAX + 1), **_auth(key)},
    ) as sock:
        status, _, body = _response(sock, timeout=5)
    assert (status, _error_code(body)) == (413, "request_too_large")
    assert body["error"]["details"]["limit"] == REQUEST_MAX
    assert "METALAKE_REQUEST_MAX_BYTES" in body["error"]["message"]
    # sent chunked: cut off once past the limit
    with _head(
        server.port,
        ingest,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **_auth(key)},
    ) as sock:
        _send_body(sock, 2 * REQUEST_MAX, chunked=True)
        status, _, body = _response(sock)
    assert (status, _error_code(body)) == (413, "request_too_large")
    # through a client: a body at the limit is the route's to judge, one byte over is not
    at_limit = b'{"entries": []' + b" " * (REQUEST_MAX - 15) + b"}"
    assert len(at_limit) == REQUEST_MAX
    response = httpx.post(
        server.url + ingest,
        content=at_limit,
        timeout=30,
        headers={"Content-Type": "application/json", **_auth(key)},
    )
    assert response.status_code == 422, response.text  # the route's own answer
    response = httpx.post(
        server.url + ingest,
        content=at_limit + b" ",
        timeout=30,
        headers={"Content-Type": "application/json", **_auth(key)},
    )
    assert response.status_code == 413
    # so do the annotation routes (METALAKE_ANNOTATION_MAX_BYTES, 1 GiB by default): a body past
    # the default limit reaches them, and is answered by the route
    coco = (
        b'{"format": "coco", "coco": {"images": [], "annotations": [], "x": "'
        + b"y" * (2 * REQUEST_MAX)
        + b'"}}'
    )
    for route in (
        f"{API}/collections/999/annotations/import",
        f"{API}/collections/by-name/nowhere/annotations/upload",
    ):
        response = httpx.post(
            server.url + route,
            content=coco,
            timeout=30,
            headers={"Content-Type": "application/json", **_auth(key)},
        )
        assert response.status_code not in (413, 500), (route, response.text)
    response = httpx.post(
        server.url + f"{API}/collections/999/annotations/export",
        content=coco,
        timeout=30,
        headers={"Content-Type": "application/json", **_auth(key)},
    )
    assert response.status_code == 413  # any other route: the default limit
    # the upload route has its own, larger limit
    path = f"{API}/collections/things/upload?content_type=image"
    body_ok, content_type = _multipart(3 * MB)
    response = httpx.post(
        server.url + path,
        content=body_ok,
        timeout=30,
        headers={"Content-Type": content_type, **_auth(key)},
    )
    assert response.status_code == 200, response.text
    body_big, content_type = _multipart(UPLOAD_MAX)
    response = httpx.post(
        server.url + path,
        content=body_big,
        timeout=30,
        headers={"Content-Type": content_type, **_auth(key)},
    )
    assert response.status_code == 413
    assert response.json()["error"]["details"]["limit"] == UPLOAD_MAX

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body_big), MB):
            yield body_big[start : start + MB]

    response = httpx.post(
        server.url + path,
        content=chunks(),
        timeout=30,
        headers={"Content-Type": content_type, **_auth(key)},
    )
    assert response.status_code == 413
    assert _files_in(server.managed) == []
    time.sleep(0.2)
    assert server.open_files_under(server.tmp) == []


@pytest.fixture
def app_url(settings: Settings) -> Iterator[tuple[str, Any]]:
    """The API served in this process, with its app at hand."""
    from engine.api.app import create_app
    from tests.conftest import serve_app

    app = create_app(settings)
    for url in serve_app(app):
        yield url, app
    app.state.db_engine.dispose()


def test_the_key_check_survives_a_dropped_connection_and_reports_a_lost_database(
    app_url: tuple[str, Any], make_key: Callable[..., str], session_factory: Any
) -> None:
    from sqlalchemy import text

    from engine.api.gate import APPLICATION_NAME
    from engine.db.session import session_scope

    url, app = app_url
    key = make_key("read", name="reader")
    collections = f"{url}{API}/collections"
    assert httpx.get(collections, headers=_auth(key)).status_code == 200
    # its idle connection dropped (a restart, an idle timeout): the next check opens another
    with session_scope(session_factory) as session:
        dropped = session.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        ).scalar()
    assert dropped == 1
    assert httpx.get(collections, headers=_auth(key)).status_code == 200
    # no database at all: a 503 in the engine's error shape, not a 401 or a 500
    connections = app.state.key_connections
    connections.url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    with session_scope(session_factory) as session:
        session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        )
    response = httpx.get(collections, headers=_auth(key))
    assert response.status_code == 503, response.text
    assert _error_code(response.json()) == "service_unavailable"
    assert httpx.get(f"{url}{API}/health").status_code == 200  # open: no key check
