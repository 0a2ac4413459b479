"""`make demo`: start the local engine, ingest generated shape images, query them.

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
COLLECTION = "demo_shapes"


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def show_query(client: Any, query: str, truth: Callable[[Any], bool], shapes: list[Any]) -> bool:
    """Run `query`, print what it found; returns whether it found exactly the truth."""
    expected = sorted(s.file_name for s in shapes if truth(s))
    items = list(client.iter_items("image", query=query))
    found = sorted(item["name"] for item in items)
    verdict = "matches the generated truth" if found == expected else (
        f"EXPECTED {len(expected)}: {expected[:5]}...")
    print(f"\nquery: {query}\n  {len(items)} item(s), {verdict}")
    for item in items[:5]:
        meta = item.get("metadata", {})
        print(f"    {item['uniqueName']:<32} {item.get('width')}x{item.get('height')}  "
              f"camera={meta.get('camera')!r}")
    if len(items) > 5:
        print(f"    ... and {len(items) - 5} more")
    return found == expected


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
    counts = {name: sum(s.shape == name for s in shapes) for name in ("circle", "square",
                                                                       "triangle")}
    print(f"  {len(shapes)} images: " + ", ".join(f"{n} {k}s" for k, n in counts.items()))

    # Talk to the demo engine explicitly, whatever METALAKE_URL this shell may have set.
    key = read_client_file(settings).get("api_key")
    try:
        with closing(Client(result.url, key)) as client:
            section(f"Ingesting into collection {COLLECTION!r}")
            collection_id = client.upload_files_to_collection(str(IMAGES), "image", COLLECTION,
                                                              {"source": "demo"})
            report = client.last_upload_report
            if report is not None:
                print(f"  collection id {collection_id}: added {report.added}, unchanged "
                      f"{report.unchanged}, failed {len(report.failed)}")
            camera_of = {s.file_name: s.camera for s in shapes}
            for item in client.iter_items("image", collection_id=collection_id):
                camera = camera_of.get(item["name"])
                if camera and item.get("metadata", {}).get("camera") != camera:
                    client.update_file_metadata(item["uniqueName"], {"camera": camera})
            print("  per-file metadata: camera = 'cam 1' | 'cam 2' | 'cam 3'")

            section("Querying the lake")
            correct = [
                show_query(client, 'metadata.camera = "cam 1"',
                           lambda s: s.camera == "cam 1", shapes),
                show_query(client, "width >= 64 AND name ~ circle",
                           lambda s: s.width >= 64 and s.shape == "circle", shapes),
                show_query(client, '(name ~ square OR name ~ triangle) AND '
                                   'metadata.camera != "cam 2" AND height > 64',
                           lambda s: s.shape in ("square", "triangle")
                           and s.camera != "cam 2" and s.height > 64, shapes),
            ]
    except MetaLakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    section("The engine is still running")
    home, bin_dir = settings.home, _shown(Path(sys.executable).parent)
    print(f"  status:   METALAKE_HOME={home} {bin_dir}/metalake status   (or: make status)")
    print(f"  query:    METALAKE_HOME={home} {bin_dir}/metalake query 'name ~ triangle'")
    print(f"  SDK:      METALAKE_HOME={home} {bin_dir}/python -c 'from sdk import Client; "
          "print(Client().get_item_list_from_datalake(query=\"name ~ circle\")[0])'")
    print("  stop it:  make down")
    if not all(correct):
        print("error: a query did not find what was generated (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
