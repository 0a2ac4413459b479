"""The local engine's admin key (`$METALAKE_HOME/client.json`) is sent only to the URL written
beside it: two real listening servers record the headers each request brought."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sdk import Client
from sdk._base import same_engine

LOCAL_KEY = "mlk_local-admin-key"


class Recorder:
    """An HTTP server answering every GET with the engine's health, noting each request's
    Authorization header (None when absent)."""

    def __init__(self) -> None:
        seen: list[str | None] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                body = json.dumps({"status": "ok", "version": "x", "database": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Recorder, Recorder]]:
    """The local engine (named in client.json, with its admin key) and another server."""
    local, other = Recorder(), Recorder()
    home = tmp_path / "home"
    home.mkdir()
    (home / "client.json").write_text(json.dumps({"url": local.url, "api_key": LOCAL_KEY}))
    monkeypatch.setenv("METALAKE_HOME", str(home))
    monkeypatch.delenv("METALAKE_URL", raising=False)
    monkeypatch.delenv("METALAKE_API_KEY", raising=False)
    yield local, other
    local.close()
    other.close()


def _health(url: str | None = None, api_key: str | None = None) -> None:
    with Client(url, api_key) as client:
        assert client.health()["status"] == "ok"


def test_the_local_key_goes_only_to_the_local_engine(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    local, other = servers
    _health(other.url)  # another server, no key given: none sent
    monkeypatch.setenv("METALAKE_URL", other.url)
    _health()  # the same through METALAKE_URL
    assert other.seen == [None, None]
    monkeypatch.delenv("METALAKE_URL")

    _health()  # nothing named: the local engine, with its key
    _health(local.url + "/")  # the local engine named, spelled differently
    _health(local.url.replace("http://", "HTTP://"))
    assert local.seen == [f"Bearer {LOCAL_KEY}"] * 3

    _health(other.url, "mlk_given")  # a key given is sent where asked
    monkeypatch.setenv("METALAKE_API_KEY", "mlk_from_env")
    _health(other.url)
    assert other.seen[2:] == ["Bearer mlk_given", "Bearer mlk_from_env"]


def test_same_engine_compares_scheme_host_port_and_path() -> None:
    assert same_engine("http://127.0.0.1:8470", "http://127.0.0.1:8470/")
    assert same_engine("HTTP://LocalHost:80/", "http://localhost")
    assert same_engine("https://engine.example/ml", "https://engine.example:443/ml/")
    for other in (
        "https://127.0.0.1:8470",
        "http://127.0.0.1:8471",
        "http://localhost:8470",
        "http://127.0.0.1:8470/other",
        "http://127.0.0.1:8470.evil.example",
        "http://127.0.0.1:8470@evil.example",
        "http://evil.example/127.0.0.1:8470",
        "127.0.0.1:8470",
        "http://127.0.0.1:notaport",
    ):
        assert not same_engine(other, "http://127.0.0.1:8470"), other
