"""Draw a file's machine boxes (label + confidence) on its image, for the demo's ./out/annotated/,
with `engine.interop.draw` (small images scaled up so the labels stay readable)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.interop.draw import Mark, draw, open_image


def annotate(
    image_path: Path,
    annotations: Iterable[dict[str, Any]],
    out_path: Path,
    *,
    truth_box: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write `image_path` with every box annotation drawn (dashed, `label conf`) and, if
    given, the generated true box (solid, labelled `truth`) to `out_path`."""
    marks = [
        Mark(a["label"], "box", a["geometry"], a.get("confidence"), "machine")
        for a in annotations
        if a.get("shape") == "box"
    ]
    if truth_box is not None:
        x1, y1, x2, y2 = truth_box
        marks.insert(
            0, Mark("truth", "box", {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, None, "human")
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    draw(open_image(image_path.read_bytes()), marks, min_side=256).save(out_path)
    return out_path
