"""Decoding a chunk's files into model input: RGB arrays at the job's input resolution.

Images: Pillow, EXIF orientation applied, converted to RGB. Videos: OpenCV, every
`stride`-th frame. Each frame remembers the original size so outputs can be scaled back.
A file that cannot be read raises `MediaError` with the reason (that item fails, not the job).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
from PIL import Image, ImageOps

from engine.errors import EngineError
from engine.storage import Storage, local_path


class MediaError(Exception):
    """The file could not be read or decoded; the message says why."""


@dataclass(frozen=True)
class Frame:
    array: np.ndarray  # uint8 (H, W, 3) RGB at the input resolution
    original_size: tuple[int, int]  # (width, height) before resizing
    frame_index: int | None = None  # videos only


def _resize(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_image(storage: Storage, uri: str, size: tuple[int, int]) -> list[Frame]:
    try:
        data = storage.read_bytes(uri)
    except EngineError as exc:
        raise MediaError(exc.message) from exc
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"cannot decode the image: {exc}") from exc
    return [Frame(_resize(image, size), image.size)]


def load_video(storage: Storage, uri: str, size: tuple[int, int], stride: int) -> list[Frame]:
    import cv2

    if urlparse(uri).scheme == "file":
        return _frames(cv2, str(local_path(uri)), size, stride)
    try:
        data = storage.read_bytes(uri)
    except EngineError as exc:
        raise MediaError(exc.message) from exc
    with tempfile.NamedTemporaryFile(suffix=".video") as handle:
        handle.write(data)
        handle.flush()
        return _frames(cv2, handle.name, size, stride)


def _frames(cv2: object, path: str, size: tuple[int, int], stride: int) -> list[Frame]:
    capture = cv2.VideoCapture(path)  # type: ignore[attr-defined]
    if not capture.isOpened():
        raise MediaError("cannot open the video (missing or not a video OpenCV can read)")
    frames: list[Frame] = []
    try:
        index = 0
        while capture.grab():
            if index % stride == 0:
                ok, bgr = capture.retrieve()
                if ok:
                    image = Image.fromarray(bgr[:, :, ::-1].copy())
                    frames.append(Frame(_resize(image, size), image.size, index))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise MediaError("the video has no decodable frames")
    return frames


def load_frames(storage: Storage, uri: str, content_type: str, size: tuple[int, int],
                stride: int) -> list[Frame]:
    if content_type == "video":
        return load_video(storage, uri, size, stride)
    return load_image(storage, uri, size)
