"""What each export format's writer costs: time, images/s, peak Python memory, output size.

    python bench/exports.py            # 20,000 images
    python bench/exports.py --quick    # 2,000 images

The writers (`engine/interop/formats/`) are pure functions of the export records, so they are
measured on their own, without a database: generated images of 640x480, each with 3
annotations (2 boxes, 1 polygon; one machine box with a score), no media, written to a sink
that counts the bytes and files and drops them. Time is one untraced pass; peak memory is
tracemalloc's on a second pass, so it is the writer's Python objects (a single-document format
holds its rows until the end), not the process's RSS. What an export through the API adds
(selecting, reading annotations by page, zipping) is the database's part, bounded by the
exports' tests (three queries a page), not timed here.

Prints a table and writes bench/results/exports.json.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from typing import Any

from common import table, write_results  # puts the checkout on sys.path

from engine.interop.formats import writer_for
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions

FORMATS = ("coco", "yolo", "voc", "label_studio", "metalake_json")
LABELS = ("circle", "square", "triangle")
WIDTH, HEIGHT = 640, 480


class CountingSink:
    """Counts what a writer writes; keeps nothing."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0

    def write(self, path: str, data: bytes) -> None:
        self.files += 1
        self.bytes += len(data)


def image(n: int) -> ExportImage:
    x, y = (n * 37) % 500, (n * 53) % 380
    label = LABELS[n % len(LABELS)]
    annotations = (
        ExportAnnotation(
            id=3 * n + 1,
            label=label,
            shape="box",
            geometry={"x1": x, "y1": y, "x2": x + 100, "y2": y + 80},
            confidence=None,
            source="human",
            status="applied",
        ),
        ExportAnnotation(
            id=3 * n + 2,
            label=label,
            shape="box",
            geometry={"x1": x + 2, "y1": y + 3, "x2": x + 98, "y2": y + 81},
            confidence=0.5 + (n % 50) / 100,
            source="machine",
            status="applied",
        ),
        ExportAnnotation(
            id=3 * n + 3,
            label=LABELS[(n + 1) % len(LABELS)],
            shape="polygon",
            geometry={"points": [[x, y], [x + 60, y + 5], [x + 70, y + 70], [x + 5, y + 60]]},
            confidence=None,
            source="human",
            status="applied",
        ),
    )
    return ExportImage(
        file_id=n + 1,
        unique_name=f"bench_img_{n:06d}.jpg",
        path=f"img_{n:06d}.jpg",
        width=WIDTH,
        height=HEIGHT,
        sha256="0" * 64,
        size_bytes=50_000,
        content_type="image",
        annotations=annotations,
    )


def run(fmt: str, count: int) -> tuple[CountingSink, float]:
    sink = CountingSink()
    gc.collect()
    started = time.perf_counter()
    writer = writer_for(fmt, sink, ExportOptions(labels=LABELS, include_media=False))
    for n in range(count):
        writer.add(image(n), None)
    writer.finish()
    return sink, time.perf_counter() - started


def measure(fmt: str, count: int) -> dict[str, Any]:
    """Timed on one pass; peak memory on a second, traced, pass (tracing slows Python down)."""
    sink, seconds = run(fmt, count)
    tracemalloc.start()
    run(fmt, count)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "format": fmt,
        "images": count,
        "seconds": round(seconds, 2),
        "images_per_s": round(count / seconds),
        "peak_python_mb": round(peak / 1e6, 1),
        "output_mb": round(sink.bytes / 1e6, 1),
        "files": sink.files,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 images instead of 20,000")
    args = parser.parse_args()
    count = 2_000 if args.quick else 20_000
    rows = [measure(fmt, count) for fmt in FORMATS]
    headers = ["format", "images", "seconds", "images/s", "peak Python MB", "output MB", "files"]
    print(table(headers, [list(r.values()) for r in rows]))
    write_results("exports", {"images": count, "annotations_per_image": 3, "formats": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
