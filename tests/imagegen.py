"""Small generated media for tests and benchmarks: JPEG/PNG images and mp4 videos (no downloads)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

_ORIENTATION = 0x0112


def _color(seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(str(seed).encode()).digest()
    return digest[0], digest[1], digest[2]


def image(path: Path, size: tuple[int, int] = (64, 48), *, seed: int = 0,
          exif_orientation: int | None = None) -> Path:
    """Write an image of `size` (width, height) whose format follows the extension; a
    different `seed` gives different bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, _color(seed))
    img.putpixel((seed % size[0], (seed // size[0]) % size[1]), (255 - seed % 256, 0, 0))
    kwargs: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[_ORIENTATION] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    img.save(path, **kwargs)
    return path


def images(root: Path, relative_paths: list[str], size: tuple[int, int] = (64, 48)) -> \
        list[Path]:
    return [image(root / rel, size, seed=i) for i, rel in enumerate(relative_paths)]


def video(path: Path, *, frames: int = 12, fps: float = 6.0,
          size: tuple[int, int] = (64, 48)) -> Path:
    """Write an mp4 (`mp4v`) with `frames` frames at `fps`."""
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    try:
        for i in range(frames):
            frame = np.full((size[1], size[0], 3), (i * 20) % 256, dtype=np.uint8)
            writer.write(frame)
    finally:
        writer.release()
    return path
