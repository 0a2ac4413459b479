"""`make demo`: start the local engine, ingest generated shape images, query them, then run
the analysis jobs on them with models the demo makes itself (nothing is downloaded):

- registers a YOLOv8n shapes detector (trained once on generated shapes, ~2.5 min on CPU,
  cached in ~/.cache/metalake-fixtures) and auto-tags a query-selected subset with it;
- registers a random-weights ResNet50 embedding model, embeds the collection and runs a
  similarity search;
- writes a few images with their machine boxes drawn to ./out/annotated/;
- exports the machine labels as COCO and as annotated images to ./out/export/, fetches a file
  by a signed URL and runs one image through the detector.

The engine's state goes to METALAKE_HOME, which defaults here to `./.demo-home` so the demo
never touches the data directory of a `metalake up` you run yourself. The engine is left
running so you can explore it; `make down` stops it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "out" / "demo_images"
BUNDLES = ROOT / "out" / "bundles"
ANNOTATED = ROOT / "out" / "annotated"
EXPORTS = ROOT / "out" / "export"
COLLECTION = "demo_shapes"
DETECTOR = "shapes_yolov8n"
EMBEDDER = "resnet50_random"
SUBSET = 'metadata.camera != "cam 3"'
JOB_TIMEOUT = 900


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def show_query(client: Any, query: str, truth: Callable[[Any], bool], shapes: list[Any]) -> bool:
    """Run `query`, print what it found; returns whether it found exactly the truth."""
    expected = sorted(s.file_name for s in shapes if truth(s))
    items = list(client.iter_items("image", query=query))
    found = sorted(item["name"] for item in items)
    verdict = (
        "matches the generated truth"
        if found == expected
        else (f"EXPECTED {len(expected)}: {expected[:5]}...")
    )
    print(f"\nquery: {query}\n  {len(items)} item(s), {verdict}")
    for item in items[:5]:
        meta = item.get("metadata", {})
        print(
            f"    {item['uniqueName']:<32} {item.get('width')}x{item.get('height')}  "
            f"camera={meta.get('camera')!r}"
        )
    if len(items) > 5:
        print(f"    ... and {len(items) - 5} more")
    return found == expected


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def register(client: Any, bundle: Path, name: str, application: str) -> str:
    """Register `bundle` as `name` unless its latest version is these very bytes (the SDK packs
    deterministically, so a second demo run does not pile up identical versions)."""
    from sdk import NotFound
    from sdk.packing import pack_bundle

    archive = bundle.with_suffix(".tar.gz")
    pack_bundle(bundle, archive)
    try:
        latest = client.get_model(name)["version"]
    except NotFound:
        latest = None
    if latest is not None and latest["sha256"] == _sha256(archive):
        print(f"  {latest['reference']} is already this bundle (same sha256): not registered again")
        return str(latest["reference"])
    version = client.register_model(str(archive), name, application)
    extra = (
        f"labels {version['label_list']}"
        if version.get("label_list")
        else f"dimension {version.get('embedding_dim')}"
    )
    print(
        f"  registered {version['reference']} ({application}, {version['size_bytes'] / 1e6:.1f}"
        f" MB, {extra})"
    )
    return str(version["reference"])


def wait(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    print(f"  job {job['job_id']} submitted ({job['status']})")
    final = client.wait_for_job(job["job_id"], timeout=JOB_TIMEOUT)
    print(
        f"  job {final['job_id']}: {final['status']} (done {final['done']}, failed "
        f"{final['failed']})"
    )
    if final.get("error"):
        print(f"    error: {final['error']}")
    for item in (final.get("errors") or [])[:3]:
        print(f"    failed: {item}")
    return dict(final)


def machine_tags(item: dict[str, Any]) -> set[str]:
    return {t["name"] for t in item.get("tags", []) if t.get("source") == "machine"}


def analyse(client: Any, collection_id: int, shapes: list[Any]) -> bool:
    """Sections 2-6: the detector, autotagging a subset, embeddings, similarity, drawings."""
    import time

    from scripts.demo_draw import annotate
    from tests.fixtures import bundles, models

    truth = {s.file_name: s for s in shapes}
    ok = True

    section(f"Registering the shapes detector as {DETECTOR!r}")
    cached = (models.cache_root() / models.DETECTOR.key() / "best.pt").is_file()
    if not cached:
        print(
            "  no pretrained weights can be downloaded here, so the demo trains its own: "
            "YOLOv8n from\n  scratch on generated shapes, on the CPU (~2.5 min, once; cached "
            f"in {models.cache_root()})"
        )
    started = time.monotonic()
    detector = models.trained_detector()
    metrics = detector.metrics
    how = "cached" if cached else f"trained in {time.monotonic() - started:.0f} s"
    print(f"  detector {how}: val mAP50 {metrics.get('map50_box', float('nan')):.3f}")
    bundle = bundles.detector_bundle(BUNDLES / DETECTOR)
    print(f"  bundle (seed layout, the yolov8_autotag template's code): {_shown(bundle)}")
    register(client, bundle, DETECTOR, "autotagging")

    section(f"Auto-tagging the files matching {SUBSET}")
    job = client.auto_tag_collection(
        collection_id, DETECTOR, (160, 160), 0.5, SUBSET, None, "local"
    )
    final = wait(client, job)
    ok &= final["status"] == "succeeded"
    inside = {
        i["name"]: i for i in client.iter_items("image", collection_id=collection_id, query=SUBSET)
    }
    outside = [
        i
        for i in client.iter_items("image", collection_id=collection_id)
        if i["name"] not in inside
    ]
    tp = predicted = 0
    for name, item in inside.items():
        got = machine_tags(item)
        tp += truth[name].shape in got
        predicted += len(got)
    tagged = sum(bool(machine_tags(i)) for i in inside.values())
    precision, recall = tp / max(predicted, 1), tp / max(len(inside), 1)
    print(
        f"  {tagged} of {len(inside)} selected files tagged; precision {precision:.2f}, "
        f"recall {recall:.2f} against the generated truth"
    )
    for name in sorted(inside)[:4]:
        got = sorted(machine_tags(inside[name])) or ["-"]
        mark = "ok" if got == [truth[name].shape] else "differs"
        print(
            f"    {inside[name]['uniqueName']:<32} tags {', '.join(got):<16} truth "
            f"{truth[name].shape:<9} {mark}"
        )
    leaked = [i["uniqueName"] for i in outside if machine_tags(i)]
    print(
        f"  {len(outside)} files outside the query (cam 3): "
        + ("none has a machine tag" if not leaked else f"TAGGED: {leaked[:5]}")
    )
    if recall < 0.8:
        print(
            "  note: the detector is a 2-minute model trained on generated 160x160 scenes; "
            "images\n  far from those (aspect, shape size) are where it misses"
        )
    ok &= not leaked

    section(f"Embeddings with {EMBEDDER!r}")
    print(
        "  no pretrained ResNet50 weights offline: this one has seeded random weights, so "
        "neighbours\n  reflect colour and layout, not learnt shape features"
    )
    bundle = bundles.resnet50_bundle(BUNDLES / EMBEDDER)
    register(client, bundle, EMBEDDER, "embedding")
    final = wait(client, client.generate_embeddings_for_collection(collection_id, EMBEDDER))
    ok &= final["status"] == "succeeded"

    section("Similarity search")
    probe = next(iter(sorted(inside.values(), key=lambda i: i["name"])))
    print(
        f"  5 nearest to {probe['uniqueName']} ({truth[probe['name']].shape}, "
        f"{probe['width']}x{probe['height']}):"
    )
    names = {i["uniqueName"]: i["name"] for i in [*inside.values(), *outside]}
    for hit in client.get_similar_items(unique_name=probe["uniqueName"], model_name=EMBEDDER, k=5):
        shape = truth[names[hit["unique_name"]]] if hit["unique_name"] in names else None
        what = f"{shape.shape:<9} {shape.width}x{shape.height}" if shape else ""
        print(f"    {hit['score']:.4f}  {hit['unique_name']:<32} {what}")

    section(f"Drawing machine boxes into {_shown(ANNOTATED)}")
    hits = [n for n in sorted(inside) if machine_tags(inside[n])]
    misses = [n for n in sorted(inside) if n not in hits]
    for name in hits[:4] + misses[:2]:
        details = client.get_file_details(inside[name]["uniqueName"])
        boxes = [a for a in details["annotations"] if a["source"] == "machine"]
        out = annotate(IMAGES / name, boxes, ANNOTATED / name, truth_box=truth[name].box)
        labels = ", ".join(f"{a['label']} {a['confidence']:.2f}" for a in boxes) or "no box"
        print(f"    {_shown(out):<36} {labels}")
    print("  red: the model's boxes (label, confidence); green: the generated true box")

    ok &= results_out(client, collection_id, probe["uniqueName"], IMAGES / probe["name"])
    return bool(ok)


def results_out(client: Any, collection_id: int, unique_name: str, image: Path) -> bool:
    """Section 7: the machine labels leave the lake as a COCO export and an annotated folder;
    a signed URL and one image through the detector."""
    import shutil
    import urllib.request

    section(f"Getting results out into {_shown(EXPORTS)}")
    ok = True
    for fmt in ("coco", "annotated"):
        target = EXPORTS / fmt
        shutil.rmtree(target, ignore_errors=True)
        report = client.export_collection(
            collection_id, fmt, target, query=SUBSET, sources=("machine",), progress=False
        )
        ok &= report["items"] > 0
        print(
            f"  {fmt:<10} {report['items']} images, {report['annotations']} annotations "
            f"-> {_shown(target)}"
        )
    url = client.get_downloadable_url(unique_name, expires_in=600)
    with urllib.request.urlopen(url, timeout=30) as answer:
        fetched = answer.read()
    ok &= fetched == image.read_bytes()
    print(f"  signed URL (no key, 10 minutes): {len(fetched)} bytes of {unique_name}")
    print(f"    {url}")
    drawn = EXPORTS / "predict.jpg"
    detections = client.predict(image, DETECTOR, 0.5, 160, annotated_path=drawn)
    found = ", ".join(f"{d['label']} {d['confidence']:.2f}" for d in detections) or "nothing"
    print(f"  one image through {DETECTOR!r}: {found} -> {_shown(drawn)}")
    ok &= bool(detections)
    return bool(ok)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    os.environ.setdefault("METALAKE_HOME", str(ROOT / ".demo-home"))
    sys.path.insert(0, str(ROOT))
    from engine.config import Settings
    from engine.errors import EngineError
    from engine.runtime.state import read_client_file
    from engine.runtime.supervisor import up
    from scripts.shapes import generate
    from sdk import Client, MetaLakeError

    settings = Settings()
    section(f"Starting the engine (state in {settings.home})")
    try:
        result = up(settings, echo=lambda line: print("  " + line))
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"  API at {result.url} (docs: {result.url}/docs), logs in {result.logs_dir}")

    section(f"Generating shape images into {IMAGES.relative_to(ROOT)}")
    shapes = generate(IMAGES, 60)
    counts = {
        name: sum(s.shape == name for s in shapes) for name in ("circle", "square", "triangle")
    }
    print(f"  {len(shapes)} images: " + ", ".join(f"{n} {k}s" for k, n in counts.items()))

    # Talk to the demo engine explicitly, whatever METALAKE_URL this shell may have set.
    key = read_client_file(settings).get("api_key")
    try:
        with closing(Client(result.url, key)) as client:
            section(f"Ingesting into collection {COLLECTION!r}")
            collection_id = client.upload_files_to_collection(
                str(IMAGES), "image", COLLECTION, {"source": "demo"}
            )
            report = client.last_upload_report
            if report is not None:
                print(
                    f"  collection id {collection_id}: added {report.added}, unchanged "
                    f"{report.unchanged}, failed {len(report.failed)}"
                )
            camera_of = {s.file_name: s.camera for s in shapes}
            for item in client.iter_items("image", collection_id=collection_id):
                camera = camera_of.get(item["name"])
                if camera and item.get("metadata", {}).get("camera") != camera:
                    client.update_file_metadata(item["uniqueName"], {"camera": camera})
            print("  per-file metadata: camera = 'cam 1' | 'cam 2' | 'cam 3'")

            section("Querying the lake")
            correct = [
                show_query(
                    client, 'metadata.camera = "cam 1"', lambda s: s.camera == "cam 1", shapes
                ),
                show_query(
                    client,
                    "width >= 240 AND name ~ circle",
                    lambda s: s.width >= 240 and s.shape == "circle",
                    shapes,
                ),
                show_query(
                    client,
                    "(name ~ square OR name ~ triangle) AND "
                    'metadata.camera != "cam 2" AND height > 160',
                    lambda s: (
                        s.shape in ("square", "triangle") and s.camera != "cam 2" and s.height > 160
                    ),
                    shapes,
                ),
            ]
            if missing := _missing_model_packages():
                print(
                    f"\nerror: the model part of the demo needs {', '.join(missing)} (the "
                    "`models` extra): pip install -e '.[models]'",
                    file=sys.stderr,
                )
                return 1
            analysed = analyse(client, int(collection_id), shapes)
    except MetaLakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    section("The engine is still running")
    home, bin_dir = settings.home, _shown(Path(sys.executable).parent)
    print(f"  gallery:  {gallery_link(settings, result.url, key)}")
    print(f"            (works once, for 10 minutes; a new one: METALAKE_HOME={home} ", end="")
    print(f"{bin_dir}/metalake ui)")
    print(f"  status:   METALAKE_HOME={home} {bin_dir}/metalake status   (or: make status)")
    print(f"  query:    METALAKE_HOME={home} {bin_dir}/metalake query 'name ~ triangle'")
    print(
        f"  SDK:      METALAKE_HOME={home} {bin_dir}/python -c 'from sdk import Client; "
        'print(Client().get_item_list_from_datalake(query="name ~ circle")[0])\''
    )
    print("  stop it:  make down")
    if not all(correct):
        print("error: a query did not find what was generated (see above)", file=sys.stderr)
        return 1
    if not analysed:
        print("error: a job failed or its results were off (see above)", file=sys.stderr)
        return 1
    return 0


def gallery_link(settings: Any, url: str, key: str | None) -> str:
    """A one-time sign-in link to the gallery of the demo collection, made as `metalake ui`
    makes one."""
    from urllib.parse import urlencode

    from engine.cli_common import reachable_database_url
    from engine.ui import pages, signin

    grid = f"{pages.PREFIX}/?" + urlencode({"q": f'collection="{COLLECTION}"'})
    return signin.one_time_link(
        database_url=reachable_database_url(settings), base_url=url, key=key or "", next_path=grid
    )


def _missing_model_packages() -> list[str]:
    import importlib.util

    return [
        name
        for name in ("torch", "torchvision", "ultralytics")
        if importlib.util.find_spec(name) is None
    ]


if __name__ == "__main__":
    sys.exit(main())
