"""Ingest benchmark: files/s for registering 10,000 small JPEGs with `upload_files_to_collection`.

    python scripts/bench_ingest.py                    # starts its own engine (see below)
    METALAKE_URL=... METALAKE_API_KEY=... python scripts/bench_ingest.py   # an engine you run

With no METALAKE_URL / --url, the script starts an embedded PostgreSQL and the API (uvicorn, in
a separate process so the client and the server do not share one GIL) on free loopback ports
under a temporary directory, and stops both at the end. The engine must be able to read the
generated files, so an external engine has to run on this machine. The time covers the whole
SDK call: walking the folder, the HTTP batches, and the engine reading, hashing and probing every
file and writing the rows. Image generation is not timed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 300.0  # files/s on a 2-core machine (issue 2, "Measured")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def generate(folder: Path, count: int, size: tuple[int, int]) -> None:
    from PIL import Image

    for i in range(count):
        sub = folder / f"d{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", size, (i % 256, (i // 256) % 256, 128))
        img.putpixel((i % size[0], 0), (255, 255, 255))  # unique bytes per file
        img.save(sub / f"img{i:05d}.jpg", quality=85)


def _wait_http(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the API exited with code {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def embedded_engine(workdir: Path) -> Iterator[tuple[str, str]]:
    """An embedded PostgreSQL and the API in a subprocess; yields (url, admin key)."""
    sys.path.insert(0, str(ROOT))
    from engine import auth
    from engine.db.migrate import upgrade
    from engine.db.session import make_engine, make_session_factory, session_scope
    from engine.runtime.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(workdir / "pg" / "data", port=free_port())
    print(f"starting embedded PostgreSQL on port {pg.port} ...", flush=True)
    pg.start()
    api: subprocess.Popen[bytes] | None = None
    try:
        database_url = pg.url("metalake")
        upgrade(database_url)
        db = make_engine(database_url, pool_size=1)
        with session_scope(make_session_factory(db)) as session:
            key, _ = auth.create_key(session=session, name="bench", scopes=["admin"])
        db.dispose()
        port = free_port()
        env = {**os.environ, "METALAKE_DATABASE_URL": database_url,
               "METALAKE_HOME": str(workdir / "home"), "METALAKE_LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(ROOT)}
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "engine.api.app:app_from_env",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/api/v1/health", 60, api)
        yield url, key
    finally:
        if api is not None:
            api.terminate()
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
        pg.stop("fast")


def run(url: str, key: str, folder: Path, count: int) -> float:
    sys.path.insert(0, str(ROOT))
    from sdk import Client

    with Client(url, key, timeout=600) as client, warnings.catch_warnings():
        warnings.simplefilter("error")  # any failed file spoils the measurement
        started = time.perf_counter()
        client.upload_files_to_collection(folder, "image", f"bench_{int(time.time())}")
        elapsed = time.perf_counter() - started
        report = client.last_upload_report
        assert report is not None
        assert report.added == count, report
        rate = count / elapsed
        print(f"first upload: {count} files in {elapsed:.2f} s = {rate:,.0f} files/s "
              f"({rate / GOAL:.1f}x the {GOAL:.0f} files/s goal)")

        collection = f"bench_re_{int(time.time())}"
        client.upload_files_to_collection(folder, "image", collection)
        started = time.perf_counter()
        client.upload_files_to_collection(folder, "image", collection)
        again = time.perf_counter() - started
        report = client.last_upload_report
        assert report is not None
        assert report.unchanged == count, report
        print(f"re-upload (nothing changed): {count / again:,.0f} files/s")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", default="64x48", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--url", default=os.environ.get("METALAKE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("METALAKE_API_KEY"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory(prefix="metalake-bench-") as tmp:
        workdir = Path(tmp)
        folder = workdir / "images"
        started = time.perf_counter()
        generate(folder, args.files, (width, height))
        print(f"generated {args.files} {width}x{height} JPEGs in "
              f"{time.perf_counter() - started:.1f} s under {folder}", flush=True)
        print(f"CPU cores: {os.cpu_count()}")
        if args.url:
            rate = run(args.url, args.api_key, folder, args.files)
        else:
            with embedded_engine(workdir) as (url, key):
                rate = run(url, key, folder, args.files)
    return 0 if rate >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
