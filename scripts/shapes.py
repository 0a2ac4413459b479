"""Generated shape images (circle / square / triangle on varied backgrounds), no downloads.

`generate(out_dir, count)` writes PNGs named `<shape>_<nn>.png`, one shape each, and returns
what it drew, so the demo can compare query results with the known truth. Deterministic for a
given seed: regenerating writes the same bytes, so re-ingesting adds nothing. The shapes are
drawn with `tests.fixtures.shapes` (the generator the test models are trained on).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from tests.fixtures.shapes import CLASSES, contrasting, outline

SHAPES = CLASSES
# Sizes and shape proportions close to the scenes the test detector learnt (160x160, shapes
# an eighth to a third of the side), so the demo's auto-tagging finds them.
SIZES = ((160, 120), (160, 160), (200, 150), (240, 180), (320, 240), (320, 320))
CAMERAS = ("cam 1", "cam 2", "cam 3")


@dataclass(frozen=True)
class Shape:
    file_name: str
    shape: str
    width: int
    height: int
    camera: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


Box = tuple[int, int, int, int]


def draw(shape: str, size: tuple[int, int], rng: random.Random) -> tuple[Image.Image, Box]:
    """One shape on a plain background, drawn as the test fixtures draw theirs (the same
    outlines and colour contrast), so models trained on those recognise these."""
    width, height = size
    background = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", size, background)
    side = rng.randint(min(size) // 5, min(size) // 3)
    x0, y0 = rng.randint(0, width - side), rng.randint(0, height - side)
    box = (x0, y0, x0 + side, y0 + side)
    polygon = outline(shape, (float(x0), float(y0), float(x0 + side), float(y0 + side)))
    ImageDraw.Draw(image).polygon(list(polygon), fill=contrasting(rng, background))
    return image, box


def generate(out_dir: Path, count: int = 60, *, seed: int = 7) -> list[Shape]:
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    shapes: list[Shape] = []
    for index in range(count):
        shape = SHAPES[index % len(SHAPES)]
        size = rng.choice(SIZES)
        image, box = draw(shape, size, rng)
        name = f"{shape}_{index:02d}.png"
        image.save(out_dir / name)
        shapes.append(Shape(name, shape, size[0], size[1], CAMERAS[(index // 3) % 3], box))
    return shapes
