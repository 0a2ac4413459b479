"""Ingest with the engine's limits set: allowed roots and the decompression-bomb threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Settings
from sdk import BadRequest, Client
from tests.fixtures import imagegen


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    return tmp_path / "allowed"


@pytest.fixture
def api_settings(settings: Settings, allowed: Path) -> Settings:
    return settings.model_copy(update={"ingest_roots": str(allowed), "max_image_pixels": 64 * 48})


def test_paths_outside_the_roots_are_refused(client: Client, allowed: Path, tmp_path: Path) -> None:
    imagegen.image(allowed / "in" / "a.jpg")
    imagegen.image(tmp_path / "outside" / "b.jpg")
    (allowed / "in" / "link.jpg").symlink_to(tmp_path / "outside" / "b.jpg")

    with pytest.raises(BadRequest, match="METALAKE_INGEST_ROOTS") as info:
        client.upload_files_to_collection(tmp_path / "outside", "image", "c")
    assert "outside" in info.value.message
    with pytest.raises(BadRequest, match=r"link\.jpg' is outside the folders"):
        client.upload_files_to_collection(allowed / "in", "image", "c")
    (allowed / "in" / "link.jpg").unlink()
    cid = client.upload_files_to_collection(allowed / "in", "image", "c")
    assert client.get_collection_details(cid)["file_count"] == 1


def test_decompression_bombs_are_recorded_not_registered(client: Client, allowed: Path) -> None:
    imagegen.image(allowed / "p" / "fits.jpg", (64, 48))
    imagegen.image(allowed / "p" / "bomb.png", (65, 48))
    with pytest.warns(UserWarning, match="1 of 2"):
        client.upload_files_to_collection(allowed / "p", "image", "p")
    report = client.last_upload_report
    assert report is not None
    assert report.added == 1
    assert "decompression bomb" in report.failed[0].reason
    assert "METALAKE_MAX_IMAGE_PIXELS=3072" in report.failed[0].reason


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height (8-bit RGB) and holds no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_a_limit_raised_above_pillows_own_is_the_one_that_counts() -> None:
    import io

    from engine.errors import UnreadableFile
    from engine.lake.probe import image_size

    big = _png_header(20_000, 10_000)  # 200 M pixels: over Pillow's default 2 x 89.5 M
    assert image_size(io.BytesIO(big), max_pixels=250_000_000) == (20_000, 10_000)
    with pytest.raises(UnreadableFile, match="METALAKE_MAX_IMAGE_PIXELS=150000000"):
        image_size(io.BytesIO(big), max_pixels=150_000_000)
