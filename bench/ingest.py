"""Ingest throughput: files/s through the SDK's `upload_files_to_collection`.

    python bench/ingest.py                  # 10,000 small JPEGs
    python bench/ingest.py --quick          # 2,000

Generates unique 64x48 JPEGs in ten sub-folders (not timed), starts an embedded engine, and
times `upload_files_to_collection(folder, "image", name)`: walking the folder, the HTTP
batches (METALAKE_INGEST_BATCH_SIZE files each) and the engine reading, hashing and probing
every file in place and writing the rows. Then the same folder is uploaded again into the
same collection (nothing changed: every file is compared and left alone) and timed too.
Every upload must register every file (a failed file spoils the run).

Prints a table, writes bench/results/ingest.json and bench/results/ingest.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

from common import (
    describe,
    embedded_engine,
    load,
    machine,
    pyplot,
    save_chart,
    table,
    write_results,
)

GOAL = 300.0  # files/s on this 2-core machine


def generate(folder: Path, count: int, size: tuple[int, int]) -> int:
    """`count` unique JPEGs in sub-folders of 1,000; their total bytes."""
    from PIL import Image

    total = 0
    for i in range(count):
        sub = folder / f"d{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", size, (i % 256, (i // 256) % 256, 128))
        image.putpixel((i % size[0], 0), (255, 255, 255))  # unique bytes per file
        path = sub / f"img{i:05d}.jpg"
        image.save(path, quality=85)
        total += path.stat().st_size
    return total


def upload(client: Any, folder: Path, collection: str, count: int, expect: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file the engine could not register is an error
        started = time.perf_counter()
        client.upload_files_to_collection(str(folder), "image", collection)
        elapsed = time.perf_counter() - started
    report = client.last_upload_report
    if getattr(report, expect) != count:
        raise SystemExit(f"expected {count} files {expect}, the engine reported {report}")
    return {
        "files": count,
        "seconds": elapsed,
        "files_per_s": count / elapsed,
        "loadavg_1min": load(),
    }


def chart(results: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = ["first upload\n(read, hash, probe, insert)", "re-upload\n(nothing changed)"]
    values = [runs["first_upload"]["files_per_s"], runs["re_upload"]["files_per_s"]]
    bars = ax.bar(labels, values, color=["tab:blue", "tab:green"])
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:,.0f}", ha="center", va="bottom")
    ax.axhline(GOAL, color="grey", linestyle="--", label=f"goal {GOAL:.0f} files/s")
    ax.set_ylabel("files / s")
    ax.set_title(
        f"upload_files_to_collection, {results['files']:,} small JPEGs "
        f"({results['machine']['cores']} cores)"
    )
    ax.legend()
    save_chart(fig, "ingest")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", default="64x48", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--quick", action="store_true", help="2,000 files")
    args = parser.parse_args()
    if args.quick:
        args.files = 2_000
    width, height = (int(v) for v in args.size.split("x"))
    print(f"machine: {describe(machine())}", flush=True)

    from sdk import Client

    with tempfile.TemporaryDirectory(prefix="metalake-bench-ingest-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        nbytes = generate(work / "images", args.files, (width, height))
        print(
            f"generated {args.files:,} {width}x{height} JPEGs ({nbytes / args.files:.0f} bytes "
            f"each) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        with (
            embedded_engine(work / "home") as engine,
            closing(Client(engine.url, engine.key, timeout=600)) as client,
        ):
            first = upload(client, work / "images", "bench_ingest", args.files, "added")
            print(f"  first upload: {first['files_per_s']:,.0f} files/s", flush=True)
            again = upload(client, work / "images", "bench_ingest", args.files, "unchanged")
            print(f"  re-upload:    {again['files_per_s']:,.0f} files/s", flush=True)
            batch = int(engine.settings.ingest_batch_size)
    results = {
        "files": args.files,
        "image_size": [width, height],
        "bytes_per_file": nbytes / args.files,
        "ingest_batch_size": batch,
        "goal_files_per_s": GOAL,
        "runs": {"first_upload": first, "re_upload": again},
    }
    rows = [
        [
            name.replace("_", " "),
            run["files"],
            run["seconds"],
            run["files_per_s"],
            run["files_per_s"] / GOAL,
            run["loadavg_1min"],
        ]
        for name, run in results["runs"].items()
    ]
    print("\n" + table(["upload", "files", "seconds", "files/s", "x goal", "load"], rows))
    chart(write_results("ingest", results))
    return 0 if first["files_per_s"] >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
