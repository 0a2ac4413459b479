"""The API under load: 20 concurrent SDK clients for 60 s.

    python bench/api_load.py                 # 20 clients, 60 s
    python bench/api_load.py --quick         # 10 clients, 15 s

An embedded engine (API, PostgreSQL, Redis, one Celery worker and its model host) holds a
lake of 5,000 small JPEGs in one collection, uploaded in 10 groups with metadata
`{"group": g, "camera": "cam g"}`, plus 40 photo-like 160x120 JPEGs; a random-weights ResNet50
is registered and a warm-up job has started its model host before the clock starts.

Each client is a thread with its own `sdk.Client`, in a closed loop (the next request leaves
when the last one returned, so at most 20 requests are in flight), loopback only, for the
duration. Each request is drawn (seeded) from the mix:

- list (45%): a page of 20 of the collection, `get_item_list_from_collection`, random page;
- query (45%): `get_item_list_from_datalake` with a query language expression and a date
  filter (metadata equality, numbers, substring on names, NOT / OR) — page of 20;
- submit (5%): `generate_embeddings_for_collection` on 2 of the photos picked by a query
  (the worker runs these while the load goes on);
- job (5%): `get_job` of the client's last submission (or `list_jobs`).

Reported per kind and overall: requests, requests/s, p50 / p95 / p99 latency, and errors by
HTTP status (or transport error); any error fails the run. Afterwards: how many submitted jobs
the worker finished during the run. Prints a table, writes bench/results/api_load.json and
bench/results/api_load.png (completed requests per second over time and latency by kind).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Engine,
    describe,
    embedded_engine,
    generate_photos,
    load,
    machine,
    percentile,
    pyplot,
    save_chart,
    table,
    write_placeholders,
    write_results,
)

COLLECTION = "load"
GROUPS = 10
MODEL = "bench_resnet50_random"
MIX = {"list": 0.45, "query": 0.45, "submit": 0.05, "job": 0.05}
QUERIES = [
    "metadata.group = {g}",
    'metadata.camera = "cam {g}" AND width >= 8',
    "metadata.group >= {g} AND metadata.group < {h}",
    "name ~ p0{g}",
    "NOT metadata.group IN [{g}, {h}] AND height <= 120",
    "metadata.group = {g} OR name ~ photo",
]
PHOTOS = 40
PAGE = 20  # the SDK's default page size


def prepare(client: Any, work: Path, files: int) -> int:
    """Upload the lake; returns the collection id."""
    per_group = files // GROUPS
    started = time.perf_counter()
    collection_id = 0
    for group in range(GROUPS):
        folder = work / "lake" / f"g{group}"
        write_placeholders(folder, [f"p{group:02d}{i:05d}.jpg" for i in range(per_group)])
        collection_id = int(
            client.upload_files_to_collection(
                str(folder), "image", COLLECTION, {"group": group, "camera": f"cam {group}"}
            )
        )
    generate_photos(
        work / "photos", [f"photo{i:03d}.jpg" for i in range(PHOTOS)], (160, 120), seed=5
    )
    client.upload_files_to_collection(
        str(work / "photos"), "image", COLLECTION, {"group": -1, "photo": True}
    )
    print(
        f"  lake: {per_group * GROUPS + PHOTOS:,} files in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return collection_id


def register_model(client: Any, work: Path, collection_id: int) -> float:
    """Register the random-weights ResNet50 and run one job so its model host is up."""
    from tests.fixtures import bundles

    bundle = bundles.resnet50_bundle(work / "bundle")
    client.register_model(str(bundle), MODEL, "embedding")
    started = time.perf_counter()
    job = client.generate_embeddings_for_collection(
        collection_id, MODEL, query="name ~ photo000", inference_platform="local"
    )
    final = client.wait_for_job(job["job_id"], timeout=600, poll_interval=1, progress=False)
    if final["status"] != "succeeded":
        raise SystemExit(f"warm-up job ended {final['status']}: {final.get('error')}")
    return time.perf_counter() - started


class Worker(threading.Thread):
    """One client in a closed loop until `deadline`; records (kind, start, seconds, error)."""

    def __init__(
        self,
        number: int,
        engine: Engine,
        collection_id: int,
        pages: int,
        deadline: float,
        start: threading.Event,
    ) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number, self.engine, self.collection_id = number, engine, collection_id
        self.pages, self.deadline, self.start_event = pages, deadline, start
        self.rng = np.random.default_rng(1000 + number)
        self.records: list[tuple[str, float, float, str | None]] = []
        self.jobs: list[int] = []

    def request(self, client: Any, kind: str) -> None:
        rng = self.rng
        if kind == "list":
            client.get_item_list_from_collection(
                self.collection_id, None, None, int(rng.integers(0, self.pages)), PAGE
            )
        elif kind == "query":
            g = int(rng.integers(0, GROUPS))
            text = str(rng.choice(QUERIES)).format(g=g, h=min(g + 3, GROUPS))
            client.get_item_list_from_datalake("image", text, {"from_date": "2020-01-01"}, 0, PAGE)
        elif kind == "submit":
            first = int(rng.integers(0, PHOTOS - 1))
            job = client.generate_embeddings_for_collection(
                self.collection_id,
                MODEL,
                query=f"name IN [{COLLECTION}_photo{first:03d}.jpg, "
                f"{COLLECTION}_photo{first + 1:03d}.jpg]",
                inference_platform="local",
            )
            self.jobs.append(int(job["job_id"]))
        elif self.jobs:
            client.get_job(self.jobs[-1])
        else:
            client.list_jobs(limit=10)

    def run(self) -> None:
        from sdk import Client
        from sdk.errors import EngineUnreachable, MetaLakeError

        kinds, weights = list(MIX), list(MIX.values())
        with closing(Client(self.engine.url, self.engine.key, timeout=30)) as client:
            self.start_event.wait()
            while (now := time.perf_counter()) < self.deadline:
                kind = str(self.rng.choice(kinds, p=weights))
                error = None
                try:
                    self.request(client, kind)
                except EngineUnreachable as exc:
                    error = "transport: " + type(exc.__cause__).__name__
                except MetaLakeError as exc:
                    error = str(exc.status or exc.code)
                self.records.append((kind, now, time.perf_counter() - now, error))


def figures(records: list[tuple[str, float, float, str | None]], seconds: float) -> dict[str, Any]:
    latencies = [r[2] * 1000 for r in records]
    errors = Counter(r[3] for r in records if r[3] is not None)
    return {
        "requests": len(records),
        "requests_per_s": len(records) / seconds,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
        "errors": sum(errors.values()),
        "errors_by_status": dict(errors),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from sdk import Client

    with (
        embedded_engine(work / "home") as engine,
        closing(Client(engine.url, engine.key, timeout=600)) as client,
    ):
        collection_id = prepare(client, work, args.files)
        warm = register_model(client, work, collection_id)
        print(f"  model registered; warm-up job (starts the model host) {warm:.1f} s", flush=True)
        pages = (args.files + PHOTOS) // PAGE
        start = threading.Event()
        began = time.perf_counter() + 0.5
        deadline = began + args.seconds
        workers = [
            Worker(i, engine, collection_id, pages, deadline, start) for i in range(args.clients)
        ]
        for worker in workers:
            worker.start()
        load_before = load()
        time.sleep(max(0.0, began - time.perf_counter()))
        start.set()
        for worker in workers:
            worker.join(args.seconds + 60)
        elapsed = time.perf_counter() - began
        load_after = load()
        records = sorted((r for w in workers for r in w.records), key=lambda r: r[1])
        submitted = [job for w in workers for job in w.jobs]
        finished = Counter(client.get_job(job)["status"] for job in submitted)
    by_kind = {kind: figures([r for r in records if r[0] == kind], elapsed) for kind in MIX}
    # requests completed in each whole second of the run (the last, partial second left out)
    timeline = np.bincount([int(r[1] + r[2] - began) for r in records], minlength=int(elapsed) + 1)[
        : int(elapsed)
    ].tolist()
    return {
        "clients": args.clients,
        "seconds": elapsed,
        "mix": MIX,
        "lake_files": args.files + PHOTOS,
        "all": figures(records, elapsed),
        "by_kind": by_kind,
        "jobs_submitted": len(submitted),
        "job_status_at_end": dict(finished),
        "completed_per_second": timeline,
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": load_after,
    }


def chart(results: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    timeline = results["completed_per_second"]
    left.plot(range(len(timeline)), timeline, marker=".")
    left.axhline(
        results["all"]["requests_per_s"],
        color="grey",
        linestyle="--",
        label=f"mean {results['all']['requests_per_s']:.0f} requests/s",
    )
    left.set(
        xlabel="second of the run",
        ylabel="requests completed",
        title=f"{results['clients']} concurrent SDK clients, closed loop",
    )
    left.legend()
    kinds = [*results["by_kind"], "all"]
    stats = [results["by_kind"].get(k, results["all"]) for k in kinds]
    xs = np.arange(len(kinds))
    for offset, key in ((-0.27, "p50_ms"), (0.0, "p95_ms"), (0.27, "p99_ms")):
        right.bar(xs + offset, [s[key] for s in stats], 0.27, label=key.replace("_ms", ""))
    right.set_xticks(
        xs,
        [
            f"{k}\n{s['requests']:,} req, {s['errors']} err"
            for k, s in zip(kinds, stats, strict=True)
        ],
    )
    right.set(ylabel="ms", title="latency by kind of request")
    right.legend()
    fig.suptitle(
        f"API under load ({results['machine']['cores']} cores, load average "
        f"{results['loadavg_1min_after']:.1f} after)"
    )
    save_chart(fig, "api_load")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--files", type=int, default=5_000, help="placeholder files in the lake")
    parser.add_argument("--quick", action="store_true", help="10 clients for 15 s")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 10, 15.0
    print(f"machine: {describe(machine())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="metalake-bench-api-load-") as tmp:
        results = run(args, Path(tmp))
    rows = [
        [
            kind,
            f["requests"],
            f["requests_per_s"],
            f["p50_ms"],
            f["p95_ms"],
            f["p99_ms"],
            f["errors"],
            ", ".join(f"{k}: {v}" for k, v in f["errors_by_status"].items()) or "-",
        ]
        for kind, f in [*results["by_kind"].items(), ("all", results["all"])]
    ]
    print(
        "\n"
        + table(
            [
                "kind",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "errors by status",
            ],
            rows,
        )
    )
    print(f"jobs submitted {results['jobs_submitted']}, at the end: {results['job_status_at_end']}")
    chart(write_results("api_load", results))
    return 0 if results["all"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
