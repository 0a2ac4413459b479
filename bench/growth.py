"""How cost grows with the lake: 1k / 10k / 100k.

    YOLO_OFFLINE=1 python bench/growth.py            # lakes of 1,000, 10,000 and 100,000 files
    YOLO_OFFLINE=1 python bench/growth.py --quick    # 1,000 and 10,000

Two halves, each measured as its lake grows in place (nothing is inserted twice):

- **Search**, from `bench/results/similarity.json` (run bench/similarity.py first; `make
  bench` does): insert rate, p50 / p95 latency and recall@10 of `get_similar_items` at each
  stage of its growing space (1k, 10k, 100k vectors), unfiltered and 10% / 1% filtered.
- **Analysis and lake queries**, measured here on an engine of its own: 100 photo-like
  160x120 JPEGs (metadata `{"probe": true}`) and tiny placeholder JPEGs up to the lake size,
  all in one collection (the placeholders are uploaded stage by stage: ingest files/s per
  stage). At each size, twice: `generate_embeddings_for_collection(collection, resnet50,
  query="metadata.probe = true")` selects the same 100 files out of the whole collection.
  Planning = the job's `started_at - created_at` (queue pick-up plus selecting the files into
  job items, server clock); images/s = 100 / (`finished_at - started_at`). Also the p50 of 20
  `get_item_list_from_collection` calls (page of 100) with that query (served by the GIN index
  on metadata) and with `name ~ probe` (a substring: every file's name is read).
  A warm-up job first starts the model host (random-weights ResNet50, 224x224).

Prints a table, writes bench/results/growth.json and bench/results/growth.png (cost vs size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from common import (
    RESULTS,
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

COLLECTION = "growth"
MODEL = "bench_resnet50_random"
PROBES = 100
PROBE_QUERY = "metadata.probe = true"
SCAN_QUERY = "name ~ probe"


def _stamp(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def job_run(client: Any, collection_id: int) -> dict[str, Any]:
    started = time.perf_counter()
    job = client.generate_embeddings_for_collection(
        collection_id, MODEL, query=PROBE_QUERY, inference_platform="local"
    )
    final = client.wait_for_job(job["job_id"], timeout=1800, poll_interval=5, progress=False)
    wall = time.perf_counter() - started
    if final["status"] != "succeeded" or final["done"] != PROBES:
        raise SystemExit(
            f"job {final['job_id']} ended {final['status']} with {final['done']} "
            f"of {PROBES} done: {final.get('error')} {final.get('errors')[:2]}"
        )
    created, began, finished = (
        _stamp(final[k]) for k in ("created_at", "started_at", "finished_at")
    )
    if created is None or began is None or finished is None:
        raise SystemExit(f"job {final['job_id']} lacks its timestamps: {final}")
    run = (finished - began).total_seconds()
    return {
        "job_id": final["job_id"],
        "planning_ms": (began - created).total_seconds() * 1000,
        "run_seconds": run,
        "images_per_s": PROBES / run,
        "sdk_wall_seconds": wall,
        "loadavg_1min": load(),
    }


def query_p50(client: Any, collection_id: int, query: str, expect: int) -> float:
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        items = client.get_item_list_from_collection(collection_id, query, None, 0, 100)
        latencies.append((time.perf_counter() - started) * 1000)
        if len(items) != expect:
            raise SystemExit(f"{query!r} returned {len(items)} items, not {expect}")
    return percentile(latencies, 50)


def analysis_growth(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from sdk import Client
    from tests.fixtures import bundles

    generate_photos(
        work / "probe", [f"probe{i:03d}.jpg" for i in range(PROBES)], (160, 120), seed=11
    )
    stages: list[dict[str, Any]] = []
    with (
        embedded_engine(work / "home") as engine,
        closing(Client(engine.url, engine.key, timeout=600)) as client,
    ):
        client.register_model(str(bundles.resnet50_bundle(work / "bundle")), MODEL, "embedding")
        collection_id = int(
            client.upload_files_to_collection(
                str(work / "probe"), "image", COLLECTION, {"probe": True}
            )
        )
        warm = job_run(client, collection_id)
        print(
            f"  warm-up job (starts the model host): {warm['sdk_wall_seconds']:.1f} s", flush=True
        )
        size = PROBES
        for target in args.sizes:
            folder = work / f"fill{target}"
            write_placeholders(folder, [f"f{i:06d}.jpg" for i in range(size, target)])
            started = time.perf_counter()
            client.upload_files_to_collection(str(folder), "image", COLLECTION)
            ingest = time.perf_counter() - started
            report = client.last_upload_report
            if report is None or report.added != target - size:
                raise SystemExit(f"the upload to {target:,} files reported {report}")
            size = target
            runs = [job_run(client, collection_id) for _ in range(args.repeats)]
            stage = {
                "files": size,
                "ingest_files_per_s": (size - (stages[-1]["files"] if stages else PROBES)) / ingest,
                "ingest_seconds": ingest,
                "jobs": runs,
                "planning_ms": statistics.median(r["planning_ms"] for r in runs),
                "images_per_s": statistics.median(r["images_per_s"] for r in runs),
                "query_probe_p50_ms": query_p50(client, collection_id, PROBE_QUERY, PROBES),
                "query_substring_p50_ms": query_p50(client, collection_id, SCAN_QUERY, PROBES),
                "loadavg_1min": load(),
            }
            stages.append(stage)
            print(
                f"  {size:>7,} files: ingest {stage['ingest_files_per_s']:,.0f} files/s, "
                f"planning {stage['planning_ms']:.0f} ms, {stage['images_per_s']:.1f} "
                f"images/s, query {stage['query_probe_p50_ms']:.1f} / "
                f"{stage['query_substring_p50_ms']:.1f} ms (load {load():.1f})",
                flush=True,
            )
    return stages


def search_growth(path: Path) -> dict[str, Any] | None:
    """The per-stage search figures of bench/similarity.py's last run, if there is one."""
    try:
        similarity = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"no {path}: run bench/similarity.py first for the search half", flush=True)
        return None
    return {
        "source": str(path.relative_to(RESULTS.parents[1])),
        "when": similarity["when"],
        "machine": similarity["machine"],
        "stages": [
            {
                "vectors": s["vectors"],
                "insert_vectors_per_s": s["insert_vectors_per_s"],
                "modes": {
                    m: {k: f[k] for k in ("recall_at_10", "p50_ms", "p95_ms", "method")}
                    for m, f in s["modes"].items()
                },
            }
            for s in similarity["stages"]
        ],
    }


def report(results: dict[str, Any]) -> str:
    out = []
    search = results.get("search")
    if search:
        rows = [
            [
                s["vectors"],
                s["insert_vectors_per_s"],
                *(
                    s["modes"][m][k]
                    for m in ("unfiltered", "filter_10pct", "filter_1pct")
                    for k in ("p95_ms", "recall_at_10")
                ),
            ]
            for s in search["stages"]
        ]
        out.append(
            f"search (from {search['source']}, {search['when']}):\n"
            + table(
                [
                    "vectors",
                    "insert/s",
                    "p95 ms",
                    "recall",
                    "10% p95",
                    "recall",
                    "1% p95",
                    "recall",
                ],
                rows,
            )
        )
    rows = [
        [
            s["files"],
            s["ingest_files_per_s"],
            s["planning_ms"],
            s["images_per_s"],
            s["query_probe_p50_ms"],
            s["query_substring_p50_ms"],
        ]
        for s in results["analysis"]
    ]
    out.append(
        f"analysis of {PROBES} query-selected files, lake queries:\n"
        + table(
            [
                "files",
                "ingest files/s",
                "planning ms",
                "images/s",
                "query p50 ms",
                "substring p50 ms",
            ],
            rows,
        )
    )
    return "\n\n".join(out)


def chart(results: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    (latency, recall), (planning, rate) = axes
    search = results.get("search")
    if search:
        sizes = [s["vectors"] for s in search["stages"]]
        for mode in ("unfiltered", "filter_10pct", "filter_1pct"):
            latency.plot(
                sizes,
                [s["modes"][mode]["p95_ms"] for s in search["stages"]],
                marker="o",
                label=f"{mode} p95",
            )
            recall.plot(
                sizes,
                [s["modes"][mode]["recall_at_10"] for s in search["stages"]],
                marker="o",
                label=f"{mode} recall@10",
            )
        inserts = recall.twinx()
        inserts.plot(
            sizes,
            [s["insert_vectors_per_s"] for s in search["stages"]],
            marker="s",
            color="black",
            linestyle=":",
            label="insert vectors/s",
        )
        inserts.set_ylabel("vectors / s inserted (HNSW kept)")
        inserts.legend(loc="upper right", fontsize=8)
    latency.set(
        xscale="log",
        xlabel="vectors in the space",
        ylabel="ms (SDK wall time)",
        title="similarity search p95 vs space size",
    )
    latency.legend(fontsize=8)
    recall.set(
        xscale="log",
        xlabel="vectors in the space",
        ylabel="recall@10",
        title="recall and insert rate vs space size",
    )
    recall.legend(loc="lower left", fontsize=8)
    stages = results["analysis"]
    files = [s["files"] for s in stages]
    planning.plot(
        files,
        [s["planning_ms"] for s in stages],
        marker="o",
        label=f"job planning ({PROBES} files selected)",
    )
    planning.plot(
        files,
        [s["query_probe_p50_ms"] for s in stages],
        marker="o",
        label=f"item list p50, {PROBE_QUERY}",
    )
    planning.plot(
        files,
        [s["query_substring_p50_ms"] for s in stages],
        marker="o",
        label=f"item list p50, {SCAN_QUERY}",
    )
    planning.set(
        xscale="log",
        yscale="log",
        xlabel="files in the lake",
        ylabel="ms",
        title="selecting from the lake vs lake size",
    )
    planning.legend(fontsize=8)
    rate.plot(
        files,
        [s["images_per_s"] for s in stages],
        marker="o",
        label=f"analysis images/s ({PROBES} selected, ResNet50 224)",
    )
    rate.set(
        xscale="log",
        xlabel="files in the lake",
        ylabel="images / s",
        title="analysis and ingest throughput vs lake size",
    )
    rate.set_ylim(bottom=0)
    ingest = rate.twinx()
    ingest.plot(
        files,
        [s["ingest_files_per_s"] for s in stages],
        marker="s",
        color="black",
        linestyle=":",
        label="ingest files/s (that stage's upload)",
    )
    ingest.set_ylabel("files / s ingested")
    ingest.set_ylim(bottom=0)
    rate.legend(loc="lower left", fontsize=8)
    ingest.legend(loc="center left", fontsize=8)
    fig.suptitle(f"Cost vs lake size ({results['machine']['cores']} cores)")
    save_chart(fig, "growth")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="lake sizes in files, ascending (comma-separated)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="jobs per size (median)")
    parser.add_argument("--quick", action="store_true", help="sizes 1,000 and 10,000")
    parser.add_argument(
        "--similarity",
        type=Path,
        default=RESULTS / "similarity.json",
        help="the search figures to chart",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes = "1000,10000"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.sizes != sorted(args.sizes) or args.sizes[0] <= PROBES:
        parser.error(f"--sizes must ascend from above {PROBES}")
    print(f"machine: {describe(machine())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="metalake-bench-growth-") as tmp:
        analysis = analysis_growth(args, Path(tmp))
    results = {
        "probes": PROBES,
        "probe_query": PROBE_QUERY,
        "model": "ResNet50 (random weights), 224x224",
        "analysis": analysis,
        "search": search_growth(args.similarity.resolve()),
    }
    print("\n" + report(results))
    chart(write_results("growth", results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
