"""What the benchmarks share: an embedded engine on free ports, the machine they ran on,
placeholder files, percentiles, tables, and writing bench/results/<name>.json and <name>.png.

Every benchmark starts its own engine with `embedded_engine` (engine.runtime.supervisor.up in a
temporary METALAKE_HOME, PostgreSQL / Redis / API on free loopback ports, one Celery worker) and
stops it on the way out, whatever happens.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the checkout, on the path
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load() -> float:
    """The 1-minute load average (other programs on the machine slow every figure)."""
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    """Cores, RAM, kernel, Python and the load averages, for the results JSON."""
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "ram_gb": memory_gb,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


def describe(info: dict[str, Any]) -> str:
    return (
        f"{info['cores']} cores ({info['cpu'] or 'unknown CPU'}), {info['ram_gb']} GB RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, load average "
        f"{' / '.join(f'{v:.2f}' for v in info['loadavg'])}"
    )


# -- the engine -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Engine:
    """A running embedded engine: its settings, API URL, admin key and database URL."""

    settings: Any  # engine.config.Settings (imported lazily: no engine import at module load)
    url: str
    key: str
    database_url: str


def _echo(line: str) -> None:
    print("  " + line, flush=True)


@contextmanager
def embedded_engine(
    home: Path, *, log_level: str = "WARNING", env: dict[str, str] | None = None
) -> Iterator[Engine]:
    """`supervisor.up` in `home` on free loopback ports; yields the `Engine`; always `down`."""
    os.environ.update(
        {
            "METALAKE_HOME": str(home),
            "METALAKE_API_HOST": "127.0.0.1",
            "METALAKE_API_PORT": str(free_port()),
            "METALAKE_PG_PORT": str(free_port()),
            "METALAKE_REDIS_PORT": str(free_port()),
            "METALAKE_LOG_LEVEL": log_level,
            "METALAKE_INFERENCE_PLATFORM": "local",
            **(env or {}),
        }
    )
    for name in (
        "METALAKE_DATABASE_URL",
        "DATABASE_URL",
        "METALAKE_REDIS_URL",
        "REDIS_URL",
        "METALAKE_URL",
        "METALAKE_API_KEY",
    ):
        os.environ.pop(name, None)  # embedded services only, never someone else's
    from engine.config import Settings
    from engine.runtime.state import EngineState, read_client_file
    from engine.runtime.supervisor import down, up

    settings = Settings()
    started = time.perf_counter()
    try:
        result = up(settings, echo=_echo)
        print(f"  engine up in {time.perf_counter() - started:.1f} s at {result.url}", flush=True)
        yield Engine(
            settings=settings,
            url=result.url,
            key=str(read_client_file(settings).get("api_key")),
            database_url=EngineState.from_settings(settings).database_url,
        )
    finally:
        down(settings, echo=_echo)


def sql_scalar(database_url: str, statement: str) -> Any:
    """One value from the engine's database (sizes, settings; never used to shortcut the API)."""
    from sqlalchemy import text

    from engine.db.session import make_engine

    db = make_engine(database_url, pool_size=1)
    try:
        with db.connect() as connection:
            value = connection.execute(text(statement)).scalar()
    finally:
        db.dispose()
    return float(value) if isinstance(value, Decimal) else value


# -- files ------------------------------------------------------------------------------------
def placeholder_jpeg() -> bytes:
    """A valid 8x8 JPEG. Files written from it get their index appended after the end-of-image
    marker (decoders ignore it), so every file has its own bytes and sha256."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 150)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def write_placeholders(folder: Path, names: Sequence[str]) -> None:
    """Tiny unique JPEGs `folder/<name>` (fast: about 100,000 a minute, fewer for slow disks)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = placeholder_jpeg()
    for name in names:
        (folder / name).write_bytes(base + name.encode())


def generate_photos(folder: Path, names: Sequence[str], size: tuple[int, int], seed: int) -> None:
    """Photo-like JPEGs (smooth colour fields, a few shapes, sensor noise), as analysis.py."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for name in names:
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
            s = int(rng.integers(min(size) // 10, min(size) // 3))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x, y, x + s, y + s), fill=colour)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / name, quality=90)


# -- figures ----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds)."""
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, numbers right-aligned."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


# -- results ----------------------------------------------------------------------------------
def write_results(name: str, results: dict[str, Any]) -> dict[str, Any]:
    """Write bench/results/<name>.json: `results` with the benchmark's name, the time and the
    machine (as now, load average included); returns what was written."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "benchmark": name,
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        **results,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")
    return body


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display), or None when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart")
        return None
    return plt


def save_chart(figure: Any, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"chart: {path.relative_to(ROOT)}")
    return path
