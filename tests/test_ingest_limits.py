"""Ingest with the engine's limits set: allowed roots and the decompression-bomb threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Settings
from sdk import BadRequest, Client
from tests import imagegen


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    return tmp_path / "allowed"


@pytest.fixture
def api_settings(settings: Settings, allowed: Path) -> Settings:
    return settings.model_copy(update={"ingest_roots": str(allowed),
                                       "max_image_pixels": 64 * 48})


def test_paths_outside_the_roots_are_refused(client: Client, allowed: Path,
                                             tmp_path: Path) -> None:
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


def test_decompression_bombs_are_recorded_not_registered(client: Client,
                                                         allowed: Path) -> None:
    imagegen.image(allowed / "p" / "fits.jpg", (64, 48))
    imagegen.image(allowed / "p" / "bomb.png", (65, 48))
    with pytest.warns(UserWarning, match="1 of 2"):
        client.upload_files_to_collection(allowed / "p", "image", "p")
    report = client.last_upload_report
    assert report is not None
    assert report.added == 1
    assert "decompression bomb" in report.failed[0].reason
    assert "METALAKE_MAX_IMAGE_PIXELS=3072" in report.failed[0].reason
