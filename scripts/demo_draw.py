"""Draw a file's machine boxes (label + confidence) on its image, for the demo's ./out/annotated/.

Small images are scaled up first so the labels stay readable; boxes are scaled with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

MIN_SIDE = 256
PREDICTED = (255, 40, 40)
TRUTH = (40, 220, 40)


def annotate(
    image_path: Path,
    annotations: Iterable[dict[str, Any]],
    out_path: Path,
    *,
    truth_box: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write `image_path` with every box annotation drawn (red, `label conf`) and, if given,
    the generated true box (green, thin) to `out_path`."""
    image = Image.open(image_path).convert("RGB")
    scale = max(1, -(-MIN_SIDE // min(image.size)))  # ceil: the short side >= MIN_SIDE
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    if truth_box is not None:
        draw.rectangle([v * scale for v in truth_box], outline=TRUTH, width=1)
    for ann in annotations:
        if ann.get("shape") != "box":
            continue
        g = ann["geometry"]
        box = [g["x1"] * scale, g["y1"] * scale, g["x2"] * scale, g["y2"] * scale]
        draw.rectangle(box, outline=PREDICTED, width=3)
        conf = ann.get("confidence")
        text = ann["label"] + (f" {conf:.2f}" if conf is not None else "")
        left, top = box[0], max(0.0, box[1] - 12)
        tb = draw.textbbox((left, top), text)
        draw.rectangle([tb[0] - 2, tb[1] - 1, tb[2] + 2, tb[3] + 1], fill=PREDICTED)
        draw.text((left, top), text, fill=(255, 255, 255))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path)
    return out_path
