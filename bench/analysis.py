"""Analysis throughput vs. the bare model (issue 5, benchmark 1; issue 4 "Measured").

    YOLO_OFFLINE=1 python bench/analysis.py                 # 300 images of 640x480
    YOLO_OFFLINE=1 python bench/analysis.py --images 120    # quicker
    YOLO_OFFLINE=1 python bench/analysis.py --large         # also 4000x3000 JPEGs

On the same generated JPEGs, for embeddings (random-weights ResNet50, 224x224) and autotagging
(the shapes-trained YOLOv8n, 320x320), it measures:

- ENGINE, end to end: an embedded engine (PostgreSQL, Redis, API, one Celery worker, the model
  host process) started with `engine.runtime.supervisor.up` in a temporary METALAKE_HOME on free
  ports; the files are uploaded, the bundle registered, the job submitted through the SDK and
  waited for. images/s = N / (submission -> `wait_for_job` returns). The job's own
  `created_at -> finished_at` (server clock, no polling granularity) is reported as well.
  A small warm-up job runs first so the model host is already up (its start is reported apart).
- BARE: the same bundle's `inference.py` imported in this process, `model_fn` once (not timed),
  then a plain loop at the engine's chunk size: open/read the file (fetch), decode + EXIF +
  RGB + resize to the job's input size exactly as `engine/jobs/media.py` does (decode/resize),
  `encode_batch` -> `input_fn` -> `predict_fn` (inference; the npz round trip is timed apart as
  "encode"), `output_fn` + parsing the JSON (write-equivalent: there is no database here).

Both share the machine in turn (the engine is idle while the bare loop runs). Prints a table,
writes bench/results/analysis.json and draws bench/results/analysis.png (matplotlib).
Generation, upload and registration are not timed. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEER = "FiftyOne compute_embeddings: 1.00x of a bare loop (9.26 vs 9.24 images/s, ResNet50)"
TASKS = {
    # name: (application, model name, input size, bundle builder)
    "embeddings": ("embedding", "bench_resnet50_random", (224, 224), "resnet50_bundle"),
    "autotagging": ("autotagging", "bench_shapes_yolov8n", (320, 320), "detector_bundle"),
}
CONFIDENCE = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- images ---------------------------------------------------------------------------------
def generate(folder: Path, count: int, size: tuple[int, int], seed: int) -> int:
    """`count` photo-like JPEGs (smooth colour fields, a few shapes, sensor noise); bytes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    total = 0
    for i in range(count):
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
            s = int(rng.integers(min(size) // 10, min(size) // 3))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.ellipse((x, y, x + s, y + s), fill=colour)
            else:
                draw.rectangle((x, y, x + s, y + s), fill=colour)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        total += path.stat().st_size
    return total


# -- the engine -----------------------------------------------------------------------------
@contextmanager
def embedded_engine(home: Path) -> Iterator[tuple[Any, str, str]]:
    """supervisor.up in `home` on free ports; yields (settings, url, admin key); always down."""
    os.environ.update({
        "METALAKE_HOME": str(home), "METALAKE_API_PORT": str(free_port()),
        "METALAKE_PG_PORT": str(free_port()), "METALAKE_REDIS_PORT": str(free_port()),
        "METALAKE_LOG_LEVEL": "INFO", "METALAKE_INFERENCE_PLATFORM": "local",
    })
    from engine.config import Settings
    from engine.runtime.state import read_client_file
    from engine.runtime.supervisor import down, up

    settings = Settings()
    started = time.perf_counter()
    try:
        result = up(settings, echo=lambda line: print("  " + line, flush=True))
        print(f"  engine up in {time.perf_counter() - started:.1f} s at {result.url}", flush=True)
        yield settings, result.url, str(read_client_file(settings).get("api_key"))
    finally:
        down(settings, echo=lambda line: print("  " + line, flush=True))


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


_TASK = re.compile(r"metalake\.jobs\.chunk\[[^\]]+\] succeeded in ([0-9.]+)s")
_INVOKE = re.compile(r"invocation: (\d+) bytes in, (\d+) bytes out, ([0-9.]+) s")


def engine_stages(logs_dir: Path, before: dict[Path, int]) -> dict[str, float]:
    """Per-stage seconds of one job from the engine's own INFO logs: Celery's per-task time
    (`succeeded in`) and the model host's per-request time (`invocation: ... s`)."""
    tasks = [float(m) for m in _TASK.findall(new_log_text(logs_dir, before, "worker.log"))]
    calls = _INVOKE.findall(new_log_text(logs_dir, before, "hosts/*.log"))
    return {"chunk_tasks": float(len(tasks)), "chunk_task_seconds": sum(tasks),
            "host_requests": float(len(calls)),
            "host_inference_seconds": sum(float(c[2]) for c in calls),
            "request_mb": sum(int(c[0]) for c in calls) / 1e6,
            "response_mb": sum(int(c[1]) for c in calls) / 1e6}


def run_job(client: Any, task: str, collection_id: int, model: str,
            size: tuple[int, int]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    if task == "embeddings":
        job = client.generate_embeddings_for_collection(collection_id, model,
                                                        inference_platform="local")
    else:
        job = client.auto_tag_collection(collection_id, model, size, CONFIDENCE, None, None,
                                         "local")
    final = client.wait_for_job(job["job_id"], timeout=3600, poll_interval=0.1, progress=False)
    elapsed = time.perf_counter() - started
    if final["status"] != "succeeded":
        raise SystemExit(f"{task} job {final['job_id']} ended {final['status']}: "
                         f"{final.get('error')} {(final.get('errors') or [])[:2]}")
    return dict(final), elapsed


def engine_runs(home: Path, sets: dict[str, tuple[Path, int]], warm: Path,
                bundles_dir: Path, bare: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{set label: {task: {"engine": figures, "bare": figures, "ratio"}}}. The bare loop of a
    task runs right after the engine's job on the same set (the engine idle), so both see the
    same load from whatever else runs on the machine."""
    from sdk import Client
    from tests.fixtures import bundles

    out: dict[str, dict[str, dict[str, Any]]] = {label: {} for label in sets}
    with embedded_engine(home) as (settings, url, key), closing(Client(url, key)) as client:
        print(f"  chunk size {settings.chunk_size}, request batch "
              f"{settings.request_batch_size}; logs in {settings.logs_dir}", flush=True)
        collections: dict[str, int] = {}
        for label, (folder, count) in sets.items():
            started = time.perf_counter()
            collections[label] = int(client.upload_files_to_collection(
                str(folder), "image", f"bench_{label}"))
            print(f"  uploaded {count} files ({label}) in {time.perf_counter() - started:.1f} s",
                  flush=True)
        warm_id = int(client.upload_files_to_collection(str(warm), "image", "bench_warmup"))
        for task, (application, model, size, builder) in TASKS.items():
            bundle = getattr(bundles, builder)(bundles_dir / model)
            client.register_model(str(bundle), model, application)
            _, cold = run_job(client, task, warm_id, model, size)
            print(f"  {task}: warm-up job (starts the model host) {cold:.1f} s", flush=True)
            for label, (_, count) in sets.items():
                before = log_sizes(settings.logs_dir)
                final, elapsed = run_job(client, task, collections[label], model, size)
                created = _stamp(final.get("created_at"))
                finished = _stamp(final.get("finished_at"))
                server = (finished - created).total_seconds() if created and finished else None
                stages = engine_stages(settings.logs_dir, before)
                # everything of the chunk tasks that is not the model host's own request time:
                # decode/resize, npz encode, HTTP to the host, JSON parse/validate, DB writes
                stages["chunk_other_seconds"] = (stages["chunk_task_seconds"]
                                                 - stages["host_inference_seconds"])
                # what is outside the chunk tasks: API, Celery queueing, SDK polling
                stages["outside_chunks_seconds"] = elapsed - stages["chunk_task_seconds"]
                figures = {
                    "images": count, "seconds": elapsed, "images_per_s": count / elapsed,
                    "server_seconds": server,
                    "server_images_per_s": count / server if server else None,
                    "stages_seconds": stages, "warmup_job_seconds": cold,
                    "chunk_size": settings.chunk_size,
                    "request_batch_size": settings.request_batch_size, "done": final["done"],
                    "loadavg_1min_after": os.getloadavg()[0],
                }
                # the bare loop batches as the engine's model requests do
                bare_figures = bare(task, sets[label][0], settings.request_batch_size,
                                    bundles_dir)
                out[label][task] = {"engine": figures, "bare": bare_figures,
                                    "ratio": figures["images_per_s"]
                                    / bare_figures["images_per_s"]}
                print(f"  ENGINE {task:<11} {label}: {count} images in {elapsed:.2f} s = "
                      f"{count / elapsed:.2f} images/s (server-side {server or float('nan'):.2f} s;"
                      f" chunks {stages['chunk_task_seconds']:.1f} s of which model host "
                      f"{stages['host_inference_seconds']:.1f} s;"
                      f" load {os.getloadavg()[0]:.1f})",
                      flush=True)
    return out


# -- the bare loop --------------------------------------------------------------------------
def bare_run(task: str, folder: Path, chunk_size: int, bundles_dir: Path) -> dict[str, Any]:
    import numpy as np
    from PIL import Image, ImageOps

    from engine.registry.contract import NPZ_CONTENT_TYPE, encode_batch
    from tests.fixtures import bundles

    application, model, size, builder = TASKS[task]
    bundle = getattr(bundles, builder)(bundles_dir / f"bare_{model}")
    inference = bundles.load_inference(bundle)
    loaded = time.perf_counter()
    net = inference.model_fn(str(bundle))
    load_seconds = time.perf_counter() - loaded
    parameters: dict[str, Any] = {"application": application, "input_resolution": list(size),
                                  "confidence_threshold": CONFIDENCE if task != "embeddings"
                                  else 0.0}
    files = sorted(folder.glob("*.jpg"))

    def one_batch(paths: list[Path], stages: dict[str, float]) -> None:
        t0 = time.perf_counter()
        blobs = [p.read_bytes() for p in paths]
        t1 = time.perf_counter()
        arrays, originals = [], []
        for data in blobs:  # as engine/jobs/media.py load_image + _resize
            with Image.open(io.BytesIO(data)) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
            originals.append(list(image.size))
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.uint8))
        t2 = time.perf_counter()
        body = encode_batch(arrays, {**parameters, "original_sizes": originals})
        batch = inference.input_fn(body, NPZ_CONTENT_TYPE)
        t3 = time.perf_counter()
        prediction = inference.predict_fn(batch, net)
        t4 = time.perf_counter()
        decoded = json.loads(inference.output_fn(prediction, "application/json"))
        assert len(decoded) == len(paths)
        t5 = time.perf_counter()
        for name, seconds in (("fetch", t1 - t0), ("decode_resize", t2 - t1),
                              ("encode", t3 - t2), ("inference", t4 - t3), ("write", t5 - t4)):
            stages[name] = stages.get(name, 0.0) + seconds

    one_batch(files[:chunk_size], {})  # warm-up (first-call allocations), not timed
    stages: dict[str, float] = {}
    started = time.perf_counter()
    for start in range(0, len(files), chunk_size):
        one_batch(files[start:start + chunk_size], stages)
    elapsed = time.perf_counter() - started
    print(f"  BARE   {task:<11}: {len(files)} images in {elapsed:.2f} s = "
          f"{len(files) / elapsed:.2f} images/s, load {os.getloadavg()[0]:.1f}  (" + ", ".join(
              f"{k} {v:.2f} s" for k, v in stages.items()) + f"; model_fn {load_seconds:.1f} s)",
          flush=True)
    return {"images": len(files), "seconds": elapsed, "images_per_s": len(files) / elapsed,
            "stages_seconds": stages, "model_fn_seconds": load_seconds,
            "loadavg_1min_after": os.getloadavg()[0],
            "chunk_size": chunk_size}


# -- report ---------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    lines = [f"{'set':<16} {'task':<12} {'engine img/s':>12} {'(server)':>9} {'bare img/s':>11}"
             f" {'ratio':>6}   bare stages s/image: fetch decode+resize encode inference write"]
    for label, tasks in results["runs"].items():
        for task, run in tasks.items():
            engine, bare = run["engine"], run["bare"]
            per = {k: 1000 * v / bare["images"] for k, v in bare["stages_seconds"].items()}
            server = engine.get("server_images_per_s")
            lines.append(
                f"{label:<16} {task:<12} {engine['images_per_s']:>12.2f} "
                f"{server if server else float('nan'):>9.2f} {bare['images_per_s']:>11.2f} "
                f"{run['ratio']:>5.2f}x   ms: {per['fetch']:.1f} / {per['decode_resize']:.1f} / "
                f"{per['encode']:.1f} / {per['inference']:.1f} / {per['write']:.1f}")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart")
        return
    labels, engine, bare, server = [], [], [], []
    for label, tasks in results["runs"].items():
        for task, run in tasks.items():
            labels.append(f"{task}\n{label}")
            engine.append(run["engine"]["images_per_s"])
            server.append(run["engine"].get("server_images_per_s") or 0)
            bare.append(run["bare"]["images_per_s"])
    fig, ax = plt.subplots(figsize=(2.6 * len(labels) + 2, 4.5))
    xs = range(len(labels))
    w = 0.27
    ax.bar([x - w for x in xs], bare, w, label="bare loop (same bundle, same batch)")
    ax.bar(list(xs), engine, w, label="engine end to end (SDK submit -> wait returns)")
    ax.bar([x + w for x in xs], server, w, label="engine, job created -> finished (server)")
    for x, (e, b) in enumerate(zip(engine, bare, strict=True)):
        ax.text(x, e, f"{e / b:.2f}x", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("images / s")
    ax.set_title(f"Analysis throughput vs. the bare model ({results['machine']['cpus']} cores, "
                 "no GPU)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart: {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="how many 640x480 JPEGs")
    parser.add_argument("--large", action="store_true", help="also a 4000x3000 run")
    parser.add_argument("--large-images", type=int, default=48,
                        help="how many 4000x3000 JPEGs with --large")
    parser.add_argument("--tasks", default="embeddings,autotagging")
    args = parser.parse_args()
    for task in args.tasks.split(","):
        if task not in TASKS:
            parser.error(f"unknown task {task!r}")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    selected = {t: TASKS[t] for t in args.tasks.split(",")}
    TASKS.clear()
    TASKS.update(selected)
    import torch

    machine = {"cpus": os.cpu_count(), "gpu": torch.cuda.is_available(),
               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "python": platform.python_version(), "platform": platform.platform()}
    print(f"machine: {machine}; load average {os.getloadavg()} (other programs running "
          "here slow both sides; see loadavg_1min_after in the JSON)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="metalake-bench-analysis-") as tmp:
        work = Path(tmp)
        sets: dict[str, tuple[Path, int]] = {}
        specs = [(f"{args.images}x640x480", args.images, (640, 480))]
        if args.large:
            specs.append((f"{args.large_images}x4000x3000", args.large_images, (4000, 3000)))
        for seed, (label, count, size) in enumerate(specs):
            started = time.perf_counter()
            nbytes = generate(work / label, count, size, seed)
            sets[label] = (work / label, count)
            print(f"generated {count} {size[0]}x{size[1]} JPEGs ({nbytes / count / 1e3:.0f} kB "
                  f"each) in {time.perf_counter() - started:.1f} s", flush=True)
        generate(work / "warmup", 32, (640, 480), 99)

        print("== engine", flush=True)
        runs = engine_runs(work / "home", sets, work / "warmup", work / "bundles", bare_run)
    results = {"benchmark": "analysis", "when": datetime.now().isoformat(timespec="seconds"),
               "machine": machine, "goal_ratio": 1.0, "peer": PEER, "runs": runs}
    (RESULTS / "analysis.json").write_text(json.dumps(results, indent=2))
    print("\n" + table(results))
    print(f"\nresults: {(RESULTS / 'analysis.json').relative_to(ROOT)}")
    chart(results, RESULTS / "analysis.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
