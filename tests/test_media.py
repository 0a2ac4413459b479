"""Decoding a chunk's images (engine/jobs/media.py): the reduced-scale JPEG decode of large
photos stays what the full decode gives the model, and sizes are the ones the user sees."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.jobs.media import decode_image


def _photo(size: tuple[int, int], *, orientation: int | None = None, seed: int = 0) -> bytes:
    """A photo-like JPEG: a smooth colour field with sensor noise."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        size, Image.Resampling.BICUBIC
    )
    noisy = np.asarray(field, dtype=np.int16) + rng.integers(-10, 11, (size[1], size[0], 3))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def _full_decode(data: bytes, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR)), image.size


@pytest.mark.parametrize("orientation", [None, 6, 3])
def test_a_large_jpeg_decodes_at_reduced_scale_close_to_the_full_decode(
    orientation: int | None,
) -> None:
    data = _photo((2400, 1800), orientation=orientation)
    [frame] = decode_image(data, (224, 224))
    expected, upright = _full_decode(data, (224, 224))
    # the size the user sees: turned by the EXIF orientation, not the reduced decode's size
    assert frame.original_size == upright
    assert upright == ((1800, 2400) if orientation == 6 else (2400, 1800))
    assert frame.array.shape == (224, 224, 3)
    assert frame.array.dtype == np.uint8
    difference = np.abs(frame.array.astype(int) - expected.astype(int))
    assert difference.mean() < 1.0
    assert difference.max() <= 8
    # ...and it is a reduced decode (DCT scaling), not the full one
    assert not np.array_equal(frame.array, expected)


def test_a_jpeg_less_than_twice_the_input_size_is_decoded_in_full() -> None:
    data = _photo((640, 480), seed=1)
    [frame] = decode_image(data, (320, 320))
    expected, upright = _full_decode(data, (320, 320))
    assert frame.original_size == upright == (640, 480)
    assert np.array_equal(frame.array, expected)


def test_a_png_is_never_reduced() -> None:
    buffer = io.BytesIO()
    Image.fromarray(
        np.random.default_rng(2).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)
    ).save(buffer, "PNG")
    [frame] = decode_image(buffer.getvalue(), (100, 100))
    expected, upright = _full_decode(buffer.getvalue(), (100, 100))
    assert frame.original_size == upright == (1600, 1600)
    assert np.array_equal(frame.array, expected)
