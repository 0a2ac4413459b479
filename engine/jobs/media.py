"""Decoding a chunk's files into model input: RGB arrays at the job's input resolution.

Images: Pillow, EXIF orientation applied, large JPEGs decoded at a reduced DCT scale. Videos:
OpenCV, every `stride`-th frame. Each frame remembers the original size so outputs can be
scaled back. A file that cannot be read raises `MediaError` with the reason (that item fails,
not the job).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import EngineError
from engine.storage import Storage, local_path


class MediaError(Exception):
    """The file could not be read or decoded; the message says why."""


_REPLACE = "replace the file with a readable image, then retry the job's failed items"


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB. 16-bit greyscale (modes I;16*, or I as some formats open it) is
    scaled to 8 bits (65535 -> 255): `convert` would clip every value above 255 to white.
    (Pillow already reads 16-bit colour PNGs as 8-bit RGB/RGBA, keeping the high bytes.)"""
    if image.mode == "I" or image.mode.startswith("I;16"):
        wide = np.clip(np.asarray(image).astype(np.float32), 0, 65535)
        image = Image.fromarray(np.rint(wide / 257.0).astype(np.uint8))
    return image.convert("RGB")


@dataclass(frozen=True)
class Frame:
    array: np.ndarray  # uint8 (H, W, 3) RGB at the input resolution
    original_size: tuple[int, int]  # (width, height) before resizing
    frame_index: int | None = None  # videos only


def _resize(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


# EXIF orientations that turn the stored image by 90 degrees (width and height swap)
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
DRAFT_MARGIN = 2  # a reduced-scale decode stays at least this many times the input size


def read_file(storage: Storage, uri: str) -> bytes:
    try:
        return storage.read_bytes(uri)
    except EngineError as exc:
        raise MediaError(exc.message) from exc


def decode_image(data: bytes, size: tuple[int, int]) -> list[Frame]:
    """The image file `data` as one frame at `size` (width, height), upright and RGB."""
    if not data:
        raise MediaError(f"cannot decode the image: the file is empty (0 bytes); {_REPLACE}")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            original = opened.size
            if opened.format == "JPEG":
                # a square draft box: the EXIF rotation is applied after decoding
                side = DRAFT_MARGIN * max(size)
                opened.draft("RGB", (side, side))
            orientation = opened.getexif().get(0x0112)
            image = to_rgb(ImageOps.exif_transpose(opened))
    except Image.DecompressionBombError as exc:
        raise MediaError(
            f"cannot decode the image: refused as a decompression bomb ({exc}); {_REPLACE}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise MediaError(
            "cannot decode the image: Pillow cannot identify its format (corrupt, "
            f"or not an image despite its extension); {_REPLACE}"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"cannot decode the image: {exc}; {_REPLACE}") from exc
    if orientation in _TRANSPOSED_ORIENTATIONS:
        original = (original[1], original[0])
    return [Frame(_resize(image, size), original)]


def load_video(storage: Storage, uri: str, size: tuple[int, int], stride: int) -> list[Frame]:
    import cv2

    if urlparse(uri).scheme == "file":
        return _frames(cv2, str(local_path(uri)), size, stride)
    data = read_file(storage, uri)
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
