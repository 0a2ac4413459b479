"""Generated shape images (circle / square / triangle on varied backgrounds), no downloads.

`generate(out_dir, count)` writes PNGs named `<shape>_<nn>.png` and returns what it drew, so
the demo can compare query results with the known truth. Deterministic for a given seed:
regenerating writes the same bytes, so re-ingesting adds nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
SIZES = ((48, 48), (64, 48), (64, 64), (96, 72), (128, 96), (128, 128))
CAMERAS = ("cam 1", "cam 2", "cam 3")


@dataclass(frozen=True)
class Shape:
    file_name: str
    shape: str
    width: int
    height: int
    camera: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


def _colors(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A background and a shape colour far enough apart to see the shape."""
    while True:
        background = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if sum(abs(a - b) for a, b in zip(background, fill, strict=True)) > 200:
            return background, fill


Box = tuple[int, int, int, int]


def draw(shape: str, size: tuple[int, int], rng: random.Random) -> tuple[Image.Image, Box]:
    width, height = size
    background, fill = _colors(rng)
    image = Image.new("RGB", size, background)
    side = rng.randint(min(size) // 3, min(size) * 3 // 4)
    x0, y0 = rng.randint(0, width - side), rng.randint(0, height - side)
    box = (x0, y0, x0 + side, y0 + side)
    pen = ImageDraw.Draw(image)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(x0 + side // 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], fill=fill)
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
