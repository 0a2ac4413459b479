"""Uploads copied into managed storage (the SDK on another machine than the engine)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from engine.config import Settings
from engine.storage import file_uri, local_path
from sdk import Client
from tests.fixtures import imagegen


@pytest.fixture
def managed_dir(tmp_path: Path) -> Path:
    return tmp_path / "managed"


@pytest.fixture
def api_settings(settings: Settings, managed_dir: Path) -> Settings:
    return settings.model_copy(update={"managed_storage_url": file_uri(managed_dir)})


def test_uploads_are_copied_content_addressed(
    client: Client, tmp_path: Path, managed_dir: Path
) -> None:
    assert client._get("/storage")["managed"] is True
    src = tmp_path / "src"
    imagegen.images(src, ["a.jpg", "sub/b.png"])
    imagegen.image(src / "same.jpg", seed=0)  # the same bytes as a.jpg
    (src / "bad.jpg").write_text("nope")

    with pytest.warns(UserWarning, match="1 of 4"):
        cid = client.upload_files_to_collection(src, "image", "remote", {"by": "sdk"})

    report = client.last_upload_report
    assert report is not None
    assert report.added == 3
    b = client.get_file_details("remote_sub_b.png")
    stored = local_path(b["storage_uri"])
    assert stored.is_relative_to(managed_dir.resolve())
    digest = hashlib.sha256((src / "sub" / "b.png").read_bytes()).hexdigest()
    assert stored.name == digest + ".png"
    assert b["sha256"] == digest
    assert b["metadata"] == {"by": "sdk"}
    a, same = (client.get_file_details(n) for n in ("remote_a.jpg", "remote_same.jpg"))
    assert a["storage_uri"] == same["storage_uri"]  # one copy of identical bytes
    got = httpx.get(b["url"], headers={"Authorization": f"Bearer {client.api_key}"})
    assert got.content == (src / "sub" / "b.png").read_bytes()
    assert got.headers["content-type"] == "image/png"

    with pytest.warns(UserWarning, match="1 of 4"):
        client.upload_files_to_collection(src, "image", "remote")
    report = client.last_upload_report
    assert report is not None
    assert (report.added, report.unchanged) == (0, 3)
    assert client.get_collection_details(cid)["file_count"] == 3


def test_managed_videos_are_probed(client: Client, tmp_path: Path) -> None:
    imagegen.video(tmp_path / "v" / "clip.mp4", frames=8, fps=4.0)
    client.upload_files_to_collection(tmp_path / "v", "video", "vids")
    clip = client.get_file_details("vids_clip.mp4")
    assert (clip["frame_count"], clip["fps"]) == (8, pytest.approx(4.0))
