"""The gallery at lake size: how long the server takes to answer the first grid page (with and
without a query, each sort), a later page of cards, an item page, and a thumbnail made on first
view and served warm from the cache, on a lake of 100,000 images (`--quick`: 10,000).

The lake: placeholder JPEGs uploaded through the API (as bench/growth.py makes its lake) plus a
few 1920x1080 photos for the thumbnails; then, for the sidebar and the queries to have work, one
tag per file (six names) and a machine box on every other file (four labels, confidences spread
over 0-1), inserted in SQL (set-up only: every figure is an HTTP request to /ui/). The browser
side is a signed-in httpx client: a one-time link made as `metalake ui` makes one. Times are
wall time on loopback, median of `--repeats`, after one unmeasured request.
Goals (issue): first grid page < 300 ms, a warm thumbnail < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from common import (
    describe,
    embedded_engine,
    generate_photos,
    load,
    machine,
    table,
    write_placeholders,
    write_results,
)

COLLECTION = "bench_ui"
PHOTOS = 5  # 1920x1080 JPEGs: the thumbnails' sources
GRID_GOAL_MS = 300
THUMB_GOAL_MS = 50
TAGS = ("red", "green", "blue", "cyan", "magenta", "yellow")
LABELS = ("a", "b", "c", "d")


def grids(sorts: list[str]) -> list[tuple[str, str]]:
    """(what, path) of the grid pages measured."""
    pages = [
        ("first grid page, no query", "/ui/"),
        ("  with tag=red", "/ui/?q=tag%3Dred"),
        ("  with annotation.label=a", "/ui/?q=annotation.label%3Da"),
    ]
    for sort in sorts:
        pages.append((f"  sorted by {sort}", f"/ui/?sort={sort}&order=desc"))
    pages += [
        ("  annotation.label=a, sorted by size", "/ui/?q=annotation.label%3Da&sort=size"),
        ("a later page of cards (page 100)", "/ui/cards?page=100"),
    ]
    return pages


def fill(engine: Any, client: Any, work: Path, files: int) -> dict[str, int]:
    """Upload the lake; tag and annotate it in SQL. Returns the photos' file ids by name."""
    from sqlalchemy import text

    from engine.db.session import make_engine

    photos = [f"photo{i}.jpg" for i in range(PHOTOS)]
    generate_photos(work / "lake", photos, (1920, 1080), seed=19)
    write_placeholders(work / "lake", [f"f{i:06d}.jpg" for i in range(files - PHOTOS)])
    started = time.perf_counter()
    client.upload_files_to_collection(str(work / "lake"), "image", COLLECTION)
    report = client.last_upload_report
    if report is None or report.added != files:
        raise SystemExit(f"the upload of {files:,} files reported {report}")
    print(f"  uploaded {files:,} files in {time.perf_counter() - started:.0f} s", flush=True)
    db = make_engine(engine.database_url, pool_size=1)
    try:
        with db.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tags (file_id, name, source, confidence) "
                    "SELECT id, (CAST(:tags AS text[]))[1 + id % :n_tags], 'machine', "
                    "(id % 100) / 100.0 "
                    "FROM files"
                ),
                {"tags": list(TAGS), "n_tags": len(TAGS)},
            )
            connection.execute(
                text(
                    "INSERT INTO annotations (file_id, label, shape, geometry, confidence, "
                    "source, status) "
                    "SELECT id, (CAST(:labels AS text[]))[1 + (id / 2) % :n_labels], 'box', "
                    '\'{"x1": 1, "y1": 1, "x2": 6, "y2": 6}\'::jsonb, '
                    "((id * 37) % 100) / 100.0, 'machine', 'applied' "
                    "FROM files WHERE id % 2 = 0"
                ),
                {"labels": list(LABELS), "n_labels": len(LABELS)},
            )
            connection.execute(text("ANALYZE tags; ANALYZE annotations; ANALYZE files"))
            ids = {
                row[0]: row[1]
                for row in connection.execute(
                    text("SELECT unique_name, id FROM files WHERE unique_name LIKE '%photo%'")
                )
            }
    finally:
        db.dispose()
    return {name.rsplit("_", 1)[-1]: file_id for name, file_id in ids.items()}


def signed_in(engine: Any) -> Any:
    """An httpx client holding a gallery session for the admin key."""
    import httpx

    from engine import auth
    from engine.db.session import make_engine, make_session_factory, session_scope
    from engine.ui import sessions

    db = make_engine(engine.database_url, pool_size=1)
    try:
        with session_scope(make_session_factory(db)) as session:
            principal = auth.authenticate(session=session, key=engine.key)
            token, _ = sessions.create_link(session=session, key_id=principal.key_id)
    finally:
        db.dispose()
    browser = httpx.Client(base_url=engine.url, timeout=120)
    answer = browser.get(f"/ui/signin/{token}")
    if answer.status_code != 303 or "metalake_ui" not in browser.cookies:
        raise SystemExit(f"signing in failed: {answer.status_code} {answer.text[:200]}")
    return browser


def timed_get(browser: Any, path: str) -> float:
    """Milliseconds for one GET of `path`, which must answer 200."""
    started = time.perf_counter()
    answer = browser.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from engine.ui import gallery
    from sdk import Client

    sorts = list(gallery.SORTS)  # date, name, size, score
    with (
        embedded_engine(work / "home") as engine,
        closing(Client(engine.url, engine.key, timeout=3600)) as client,
    ):
        photos = fill(engine, client, work, args.files)
        browser = signed_in(engine)
        with closing(browser):
            rows: list[dict[str, Any]] = []
            item = next(iter(photos.values()))
            for what, path in [*grids(sorts), ("an item page", f"/ui/items/{item}")]:
                timed_get(browser, path)  # unmeasured: plans and caches warm
                times = [timed_get(browser, path) for _ in range(args.repeats)]
                rows.append({"what": what, "path": path, "median_ms": statistics.median(times)})
                print(f"  {what.strip():<40} {statistics.median(times):7.1f} ms", flush=True)
            cold = [timed_get(browser, f"/ui/thumbs/{i}") for i in photos.values()]
            warm = [
                timed_get(browser, f"/ui/thumbs/{i}")
                for _ in range(args.repeats)
                for i in photos.values()
            ]
    return {
        "files": args.files,
        "tags": args.files,
        "annotations": args.files // 2,
        "repeats": args.repeats,
        "pages": rows,
        "thumbnail_first_view_ms": statistics.median(cold),
        "thumbnail_warm_ms": statistics.median(warm),
        "loadavg_1min": load(),
    }


def report(results: dict[str, Any]) -> str:
    first = results["pages"][0]["median_ms"]
    rows: list[list[Any]] = [[p["what"], p["median_ms"]] for p in results["pages"]]
    rows += [
        ["a thumbnail, first view (1920x1080 JPEG)", results["thumbnail_first_view_ms"]],
        ["a thumbnail, warm", results["thumbnail_warm_ms"]],
    ]
    verdict = (
        f"first grid page {first:.0f} ms (goal < {GRID_GOAL_MS}: "
        f"{'met' if first < GRID_GOAL_MS else 'NOT met'}); warm thumbnail "
        f"{results['thumbnail_warm_ms']:.1f} ms (goal < {THUMB_GOAL_MS}: "
        f"{'met' if results['thumbnail_warm_ms'] < THUMB_GOAL_MS else 'NOT met'})"
    )
    return (
        f"The gallery on {results['files']:,} images ({results['annotations']:,} machine boxes, "
        f"{results['tags']:,} tags), median of {results['repeats']}, load average "
        f"{results['loadavg_1min']}:\n" + table(["request", "ms"], rows) + "\n" + verdict
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000, help="images in the lake")
    parser.add_argument("--repeats", type=int, default=7, help="requests per figure (median)")
    parser.add_argument("--quick", action="store_true", help="a lake of 10,000 images")
    args = parser.parse_args()
    if args.quick:
        args.files = 10_000
    if args.files <= PHOTOS:
        parser.error(f"--files must be above {PHOTOS}")
    print(f"machine: {describe(machine())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="metalake-bench-ui-") as tmp:
        results = measure(args, Path(tmp))
    print("\n" + report(results))
    write_results("ui", results)
    met = (
        results["pages"][0]["median_ms"] < GRID_GOAL_MS
        and results["thumbnail_warm_ms"] < THUMB_GOAL_MS
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
