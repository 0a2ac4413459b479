"""Analysis throughput vs. the bare model.

    YOLO_OFFLINE=1 python bench/analysis.py            # full: 1,000 x 640x480, 64 x 4000x3000,
                                                        # 1 and 2 workers (about 10 minutes)
    YOLO_OFFLINE=1 python bench/analysis.py --quick    # 120 x 640x480, 1 worker

On the same generated JPEGs, for embeddings (random-weights ResNet50, 224x224) and autotagging
(the shapes-trained YOLOv8n, 320x320), it measures:

- ENGINE, end to end: an embedded engine (PostgreSQL, Redis, API, Celery worker(s), a model
  host process per worker) started with `engine.runtime.supervisor.up` in a temporary
  METALAKE_HOME on free ports; the files are uploaded, the bundle registered, the job submitted
  through the SDK and waited for. images/s = N / (submission -> `wait_for_job` returns). The
  job's own `created_at -> finished_at` (server clock, no polling granularity) is reported as
  well. A warm-up job runs first so the model host(s) are already up (their start is reported
  apart). Per-stage seconds come from the worker's own log line per chunk (`fetch`, `decode`,
  `inference` = waiting for the model host, `checks` = validating its output, `write` = the
  results transaction); fetch, decode and checks run on helper threads while the model infers.
  "2 workers" starts a second `metalake worker` process (its own model host) next to the first.
- BARE: the same bundle's `inference.py` imported in this process, `model_fn` once (not timed),
  then a plain loop at the engine's request batch size: read the file (fetch), decode + EXIF +
  RGB + bilinear resize to the job's input size, the full-size decode (decode/resize),
  `encode_batch` -> `input_fn` (encode), `predict_fn` (inference), `output_fn` + parsing its
  JSON (write: the output step; there is no database here). A hook the bundle leaves out is
  the model host's default (`serve.hooks_of`).

Engine and bare take turns on the machine (the engine is idle while the bare loop runs). Prints
a table, writes bench/results/analysis.json and draws bench/results/analysis.png (matplotlib).
Generation, upload and registration are not timed. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from common import (
    describe,
    embedded_engine,
    generate_photos,
    machine,
    pyplot,
    save_chart,
    write_results,
)

PEER = "FiftyOne compute_embeddings: 1.00x of a bare loop (9.26 vs 9.24 images/s, ResNet50)"
TASKS = {
    # name: (application, model name, input size, bundle builder)
    "embeddings": ("embedding", "bench_resnet50_random", (224, 224), "resnet50_bundle"),
    "autotagging": ("autotagging", "bench_shapes_yolov8n", (320, 320), "detector_bundle"),
}
CONFIDENCE = 0.5
STAGES = ("fetch", "decode", "inference", "checks", "write")


# -- images ---------------------------------------------------------------------------------
def generate(folder: Path, count: int, size: tuple[int, int], seed: int) -> int:
    """`count` photo-like JPEGs (bench/common.py `generate_photos`); their bytes in all."""
    generate_photos(folder, [f"img{i:05d}.jpg" for i in range(count)], size, seed)
    return sum(path.stat().st_size for path in folder.glob("*.jpg"))


# -- the engine -----------------------------------------------------------------------------
@contextmanager
def engine_up(home: Path) -> Iterator[tuple[Any, str, str]]:
    """bench/common.py's embedded engine with INFO logs (the per-chunk stage lines) and a
    worker of one process: the 2-worker runs add a second (METALAKE_WORKER_CONCURRENCY=2,
    the default, gives the same two processes in one worker)."""
    with embedded_engine(
        home, log_level="INFO", env={"METALAKE_WORKER_CONCURRENCY": "1"}
    ) as engine:
        yield engine.settings, engine.url, engine.key


@contextmanager
def extra_workers(settings: Any, count: int) -> Iterator[None]:
    """`count` more `metalake worker` processes on the engine's database and broker (their
    logs next to the first worker's); stopped (and waited for) on exit."""
    from engine.runtime.state import load_state
    from engine.runtime.supervisor import child_environment

    state = load_state(settings)
    assert state is not None, "the engine is not up"
    env = child_environment(state.settings(settings))
    processes = []
    try:
        for n in range(count):
            log = (settings.logs_dir / f"worker-extra{n + 1}.log").open("ab")
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "engine.cli",
                        "worker",
                        "--concurrency",
                        "1",
                        "--hostname",
                        f"bench-extra{n + 1}@%h",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        deadline = time.monotonic() + 60
        from celery import Celery

        app = Celery(broker=env["REDIS_URL"])
        while time.monotonic() < deadline:
            answers = app.control.ping(timeout=1.0) or []
            if len(answers) >= count + 1:
                break
        else:
            raise SystemExit("the extra workers did not answer a ping within 60 s")
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def _stamp(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def log_sizes(logs_dir: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in logs_dir.rglob("*.log")}


def new_log_text(logs_dir: Path, before: dict[Path, int], pattern: str) -> str:
    """What the logs matching `pattern` (a glob under logs_dir) gained since `before`."""
    text = []
    for path in sorted(logs_dir.rglob(pattern)):
        with path.open("rb") as handle:
            handle.seek(before.get(path, 0))
            text.append(handle.read().decode(errors="replace"))
    return "\n".join(text)


_CHUNK = re.compile(
    r"job \d+ chunk \d+: .* in ([0-9.]+) s \(fetch ([0-9.]+), decode ([0-9.]+), "
    r"inference ([0-9.]+), checks ([0-9.]+), write ([0-9.]+)\)"
)
_INVOKE = re.compile(r"invocation: (\d+) bytes in, (\d+) bytes out, ([0-9.]+) s")


def engine_stages(logs_dir: Path, before: dict[Path, int]) -> dict[str, float]:
    """Per-stage seconds of one job from the engine's own INFO logs: the worker's line per
    chunk and the model host's per-request time (`invocation: ... s`)."""
    chunks = _CHUNK.findall(new_log_text(logs_dir, before, "worker*.log"))
    calls = _INVOKE.findall(new_log_text(logs_dir, before, "hosts/*.log"))
    stages = {"chunks": float(len(chunks)), "chunk_seconds": sum(float(c[0]) for c in chunks)}
    for index, name in enumerate(STAGES, start=1):
        stages[name] = sum(float(c[index]) for c in chunks)
    stages.update(
        {
            "host_requests": float(len(calls)),
            "host_seconds": sum(float(c[2]) for c in calls),
            "request_mb": sum(int(c[0]) for c in calls) / 1e6,
            "response_mb": sum(int(c[1]) for c in calls) / 1e6,
        }
    )
    return stages


def run_job(
    client: Any, task: str, collection_id: int, model: str, size: tuple[int, int]
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    if task == "embeddings":
        job = client.generate_embeddings_for_collection(
            collection_id, model, inference_platform="local"
        )
    else:
        job = client.auto_tag_collection(
            collection_id, model, size, CONFIDENCE, None, None, "local"
        )
    final = client.wait_for_job(job["job_id"], timeout=3600, poll_interval=5, progress=False)
    elapsed = time.perf_counter() - started
    if final["status"] != "succeeded":
        raise SystemExit(
            f"{task} job {final['job_id']} ended {final['status']}: "
            f"{final.get('error')} {(final.get('errors') or [])[:2]}"
        )
    return dict(final), elapsed


def settle_indexes(client: Any, settings: Any, timeout: float = 300) -> None:
    """Wait for the HNSW index builds a job's vectors made due (a worker starts one once the
    space has been quiet for index_quiet_seconds, engine/embeddings/indexing.py), so that none
    runs beside the bare loop that follows."""
    from engine.embeddings.indexing import build_threshold

    deadline = time.monotonic() + timeout

    def due(space: dict[str, Any]) -> bool:
        if space["index"] in ("building", "rebuilding"):
            return True
        return bool(
            space["vectors"]
            >= build_threshold(
                space["index"] != "none",
                space["indexed_vectors"],
                min_vectors=settings.index_min_vectors,
                growth=settings.index_rebuild_growth,
            )
        )

    while waiting := [s["name"] for s in client.list_embedding_spaces() if due(s)]:
        if time.monotonic() > deadline:
            raise SystemExit(f"the index builds of {waiting} did not finish in {timeout:g} s")
        time.sleep(1)


def engine_run(
    client: Any, settings: Any, task: str, collection_id: int, count: int, workers: int
) -> dict[str, Any]:
    _, model, size, _ = TASKS[task]
    before = log_sizes(settings.logs_dir)
    final, elapsed = run_job(client, task, collection_id, model, size)
    created, finished = _stamp(final.get("created_at")), _stamp(final.get("finished_at"))
    server = (finished - created).total_seconds() if created and finished else None
    stages = engine_stages(settings.logs_dir, before)
    figures = {
        "images": count,
        "workers": workers,
        "seconds": elapsed,
        "images_per_s": count / elapsed,
        "server_seconds": server,
        "server_images_per_s": count / server if server else None,
        "stages_seconds": stages,
        "chunk_size": settings.chunk_size,
        "request_batch_size": settings.request_batch_size,
        "done": final["done"],
        "loadavg_1min_after": os.getloadavg()[0],
    }
    print(
        f"  ENGINE {task:<11} {count} images, {workers} worker(s): {elapsed:.2f} s = "
        f"{count / elapsed:.2f} images/s (server {server or float('nan'):.2f} s; "
        + ", ".join(f"{name} {stages[name]:.1f}" for name in STAGES)
        + f" s; load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return figures


def runs(
    home: Path,
    sets: dict[str, tuple[Path, int]],
    warm: Path,
    bundles_dir: Path,
    worker_counts: list[int],
) -> dict[str, dict[str, dict[str, Any]]]:
    """{set label: {task: {"bare": figures, "engine": {workers: figures}, "ratio": {...}}}}.
    The bare loop of a task runs right after the engine's 1-worker job on the same set (the
    engine idle), so both see the same load from whatever else runs on the machine."""
    from sdk import Client
    from tests.fixtures import bundles

    out: dict[str, dict[str, dict[str, Any]]] = {label: {} for label in sets}
    with engine_up(home) as (settings, url, key), closing(Client(url, key)) as client:
        print(
            f"  chunk size {settings.chunk_size}, request batch "
            f"{settings.request_batch_size}; logs in {settings.logs_dir}",
            flush=True,
        )
        collections: dict[str, int] = {}
        for label, (folder, count) in sets.items():
            started = time.perf_counter()
            collections[label] = int(
                client.upload_files_to_collection(str(folder), "image", f"bench_{label}")
            )
            print(
                f"  uploaded {count} files ({label}) in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        warm_id = int(client.upload_files_to_collection(str(warm), "image", "bench_warmup"))
        for task, (application, model, size, builder) in TASKS.items():
            bundle = getattr(bundles, builder)(bundles_dir / model)
            client.register_model(str(bundle), model, application)
            _, cold = run_job(client, task, warm_id, model, size)
            print(f"  {task}: warm-up job (starts the model host) {cold:.1f} s", flush=True)
            for label, (folder, count) in sets.items():
                engine = {1: engine_run(client, settings, task, collections[label], count, 1)}
                settle_indexes(client, settings)
                bare = bare_run(task, folder, settings.request_batch_size, bundles_dir)
                out[label][task] = {"bare": bare, "engine": engine}
        for workers in (w for w in worker_counts if w > 1):
            label = next(iter(sets))  # the main set only
            with extra_workers(settings, workers - 1):
                for task, (_, model, size, _) in TASKS.items():
                    # a warm-up job of 2+ chunks starts the new workers' model hosts
                    _, cold = run_job(client, task, warm_id, model, size)
                    print(f"  {task}: warm-up job with {workers} workers {cold:.1f} s", flush=True)
                    out[label][task]["engine"][workers] = engine_run(
                        client, settings, task, collections[label], sets[label][1], workers
                    )
    for tasks in out.values():
        for run in tasks.values():
            run["ratio"] = {
                workers: figures["images_per_s"] / run["bare"]["images_per_s"]
                for workers, figures in run["engine"].items()
            }
    return out


# -- the bare loop --------------------------------------------------------------------------
def bare_run(task: str, folder: Path, chunk_size: int, bundles_dir: Path) -> dict[str, Any]:
    import numpy as np
    from PIL import Image, ImageOps

    from engine.hosting import serve
    from engine.hosting.contract import NPZ_CONTENT_TYPE, encode_batch
    from tests.fixtures import bundles

    application, model, size, builder = TASKS[task]
    bundle = getattr(bundles, builder)(bundles_dir / f"bare_{model}")
    inference = bundles.load_inference(bundle)
    hooks = serve.hooks_of(inference)  # the host's defaults where the bundle has none
    loaded = time.perf_counter()
    net = hooks["model_fn"](str(bundle))
    load_seconds = time.perf_counter() - loaded
    parameters: dict[str, Any] = {
        "application": application,
        "input_resolution": list(size),
        "confidence_threshold": CONFIDENCE if task != "embeddings" else 0.0,
    }
    files = sorted(folder.glob("*.jpg"))

    def one_batch(paths: list[Path], stages: dict[str, float]) -> None:
        t0 = time.perf_counter()
        blobs = [p.read_bytes() for p in paths]
        t1 = time.perf_counter()
        arrays, originals = [], []
        for data in blobs:  # media.decode_image, without its reduced-scale JPEG draft
            with Image.open(io.BytesIO(data)) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
            originals.append(list(image.size))
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.uint8))
        t2 = time.perf_counter()
        body = encode_batch(arrays, {**parameters, "original_sizes": originals})
        batch = hooks["input_fn"](body, NPZ_CONTENT_TYPE)
        t3 = time.perf_counter()
        prediction = hooks["predict_fn"](batch, net)
        t4 = time.perf_counter()
        answer = hooks["output_fn"](prediction, "application/json")
        decoded = json.loads(
            serve.encode_result(answer[0] if isinstance(answer, tuple) else answer)
        )
        assert len(decoded) == len(paths)
        t5 = time.perf_counter()
        for name, seconds in (
            ("fetch", t1 - t0),
            ("decode_resize", t2 - t1),
            ("encode", t3 - t2),
            ("inference", t4 - t3),
            ("write", t5 - t4),
        ):
            stages[name] = stages.get(name, 0.0) + seconds

    one_batch(files[:chunk_size], {})  # warm-up (first-call allocations), not timed
    stages: dict[str, float] = {}
    started = time.perf_counter()
    for start in range(0, len(files), chunk_size):
        one_batch(files[start : start + chunk_size], stages)
    elapsed = time.perf_counter() - started
    print(
        f"  BARE   {task:<11} {len(files)} images: {elapsed:.2f} s = "
        f"{len(files) / elapsed:.2f} images/s, load {os.getloadavg()[0]:.1f}  ("
        + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
        + f"; model_fn {load_seconds:.1f} s)",
        flush=True,
    )
    return {
        "images": len(files),
        "seconds": elapsed,
        "images_per_s": len(files) / elapsed,
        "stages_seconds": stages,
        "model_fn_seconds": load_seconds,
        "loadavg_1min_after": os.getloadavg()[0],
        "chunk_size": chunk_size,
    }


# -- report ---------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'set':<14} {'task':<12} {'workers':>7} {'engine img/s':>12} {'(server)':>9} "
        f"{'bare img/s':>10} {'ratio':>6}   seconds: fetch / decode / inference / "
        "checks|encode / write"
    ]
    for label, tasks in results["runs"].items():
        for task, run in tasks.items():
            bare = run["bare"]
            b = bare["stages_seconds"]
            lines.append(
                f"{label:<14} {task:<12} {'bare':>7} {'':>12} {'':>9} "
                f"{bare['images_per_s']:>10.2f} {'':>6}   bare   "
                f"{b['fetch']:.1f} / {b['decode_resize']:.1f} / {b['inference']:.1f}"
                f" / {b['encode']:.1f} / {b['write']:.1f}"
            )
            for workers, engine in run["engine"].items():
                e = engine["stages_seconds"]
                server = engine.get("server_images_per_s")
                lines.append(
                    f"{label:<14} {task:<12} {workers:>7} {engine['images_per_s']:>12.2f} "
                    f"{server if server else float('nan'):>9.2f} {'':>10} "
                    f"{run['ratio'][workers]:>5.2f}x   engine "
                    + " / ".join(f"{e[name]:.1f}" for name in STAGES)
                )
    return "\n".join(lines)


def chart(results: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    counts = sorted(
        {
            int(w)
            for tasks in results["runs"].values()
            for run in tasks.values()
            for w in run["engine"]
        }
    )
    labels: list[str] = []
    bare: list[float] = []
    engine: dict[int, list[float]] = {workers: [] for workers in counts}
    for label, tasks in results["runs"].items():
        for task, run in tasks.items():
            labels.append(f"{task}\n{label}")
            bare.append(run["bare"]["images_per_s"])
            by_workers = {int(w): figures for w, figures in run["engine"].items()}
            for workers in counts:
                figures = by_workers.get(workers)
                engine[workers].append(figures["images_per_s"] if figures else 0.0)
    series = [("bare loop (same bundle, same batch)", bare)] + [
        (f"engine, {w} worker{'s' if w > 1 else ''}", engine[w]) for w in counts
    ]
    fig, ax = plt.subplots(figsize=(2.8 * len(labels) + 2, 4.8))
    width = 0.8 / len(series)
    for n, (name, values) in enumerate(series):
        xs = [x + (n - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name)
        if n:
            for x, value, base in zip(xs, values, bare, strict=True):
                if value:
                    ax.text(x, value, f"{value / base:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(range(len(labels))), labels)
    ax.set_ylabel("images / s")
    ax.set_title(
        f"Analysis throughput vs. the bare model ({results['machine']['cores']} cores, no GPU)"
    )
    ax.legend(fontsize=8)
    save_chart(fig, "analysis")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="how many 640x480 JPEGs")
    parser.add_argument(
        "--large-images", type=int, default=64, help="how many 4000x3000 JPEGs (0: no large set)"
    )
    parser.add_argument(
        "--workers", default="1,2", help="worker process counts to run the 640x480 set with"
    )
    parser.add_argument("--tasks", default="embeddings,autotagging")
    parser.add_argument(
        "--quick", action="store_true", help="120 images, no large set, 1 worker (while developing)"
    )
    args = parser.parse_args()
    # stopped with SIGTERM (or from a background shell, where SIGINT is ignored): unwind, so the
    # embedded engine and its worker processes are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.images, args.large_images, args.workers = 120, 0, "1"
    worker_counts = sorted({int(w) for w in args.workers.split(",")} | {1})
    for task in args.tasks.split(","):
        if task not in TASKS:
            parser.error(f"unknown task {task!r}")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    selected = {t: TASKS[t] for t in args.tasks.split(",")}
    TASKS.clear()
    TASKS.update(selected)
    import torch

    model_runtime = {
        "gpu": torch.cuda.is_available(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"machine: {describe(machine())}; {model_runtime} (other programs running here slow "
        "both sides; see loadavg_1min_after in the JSON)"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metalake-bench-analysis-") as tmp:
        work = Path(tmp)
        sets: dict[str, tuple[Path, int]] = {}
        specs = [(f"{args.images}x640x480", args.images, (640, 480))]
        if args.large_images:
            specs.append((f"{args.large_images}x4000x3000", args.large_images, (4000, 3000)))
        for seed, (label, count, size) in enumerate(specs):
            began = time.perf_counter()
            nbytes = generate(work / label, count, size, seed)
            sets[label] = (work / label, count)
            print(
                f"generated {count} {size[0]}x{size[1]} JPEGs ({nbytes / count / 1e3:.0f} kB "
                f"each) in {time.perf_counter() - began:.1f} s",
                flush=True,
            )
        generate(work / "warmup", 128, (640, 480), 99)  # two chunks: warms two workers

        print("== engine and bare, in turns", flush=True)
        measured = runs(work / "home", sets, work / "warmup", work / "bundles", worker_counts)
    results = write_results(
        "analysis",
        {
            "model_runtime": model_runtime,
            "goal_ratio": 1.0,
            "peer": PEER,
            "runs": measured,
            "bench_seconds": time.perf_counter() - started,
        },
    )
    print("\n" + table(results))
    chart(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
