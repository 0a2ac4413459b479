"""Ingest through the SDK and the real API: folders, single files, videos, bad files, bad paths."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.models import File, IngestFailure
from engine.storage import file_uri
from sdk import BadRequest, Client, Conflict, Forbidden
from tests.fixtures import imagegen


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def birds(tmp_path: Path) -> Path:
    root = tmp_path / "birds"
    imagegen.image(root / "a.jpg", (64, 48), seed=1)
    imagegen.image(root / "sub" / "b.png", (32, 20), seed=2)
    imagegen.image(root / "sub" / "deeper" / "c.jpeg", (16, 16), seed=3)
    # hidden, macOS and OS litter: skipped
    imagegen.image(root / ".hidden.jpg", seed=4)
    (root / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    imagegen.image(root / ".git" / "x.jpg", seed=5)
    imagegen.image(root / "__MACOSX" / "a.jpg", seed=6)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "Thumbs.db").write_bytes(b"thumbs")
    (root / "notes.txt").write_text("not media")
    return root


def test_folder_is_registered_in_place(client: Client, birds: Path) -> None:
    cid = client.upload_files_to_collection(birds, "image", "birds", {"camera": "cam 1"})

    report = client.last_upload_report
    assert report is not None
    assert (report.collection_id, report.added, report.updated, report.failed) == (cid, 3, 0, [])
    assert client.get_collection_details(cid)["file_count"] == 3

    b = client.get_file_details("birds_sub_b.png")
    assert b["name"] == "sub_b.png"
    assert b["uniqueName"] == "birds_sub_b.png"
    assert (b["width"], b["height"]) == (32, 20)
    assert b["sha256"] == _sha(birds / "sub" / "b.png")
    assert b["size_bytes"] == (birds / "sub" / "b.png").stat().st_size
    assert b["storage_uri"] == file_uri(birds / "sub" / "b.png")
    assert b["metadata"] == {"camera": "cam 1"}
    assert b["collections"] == ["birds"]
    assert b["content_type"] == "image"
    assert b["uploaded_at"]
    names = {item["uniqueName"] for item in client.iter_items(collection_id=cid)}
    assert names == {"birds_a.jpg", "birds_sub_b.png", "birds_sub_deeper_c.jpeg"}


def test_reupload_adds_nothing_and_changed_bytes_update(
    client: Client, birds: Path, session: Session
) -> None:
    cid = client.upload_files_to_collection(birds, "image", "birds")
    first = client.get_file_details("birds_a.jpg")

    assert client.upload_files_to_collection(birds, "image", "birds") == cid
    report = client.last_upload_report
    assert report is not None
    assert (report.added, report.updated, report.unchanged) == (0, 0, 3)
    assert session.scalar(select(func.count()).select_from(File)) == 3

    imagegen.image(birds / "a.jpg", (80, 60), seed=99)  # new bytes, same name
    imagegen.image(birds / "new.jpg", seed=7)
    client.upload_files_to_collection(birds, "image", "birds")
    report = client.last_upload_report
    assert report is not None
    assert (report.added, report.updated, report.unchanged) == (1, 1, 2)
    changed = client.get_file_details("birds_a.jpg")
    assert changed["id"] == first["id"]
    assert changed["sha256"] == _sha(birds / "a.jpg") != first["sha256"]
    assert (changed["width"], changed["height"]) == (80, 60)
    assert changed["uploaded_at"] >= first["uploaded_at"]

    # New upload metadata merges over the file's own keys.
    client.update_file_metadata("birds_a.jpg", {"reviewed": True})
    client.upload_files_to_collection(birds, "image", "birds", {"site": "north"})
    report = client.last_upload_report
    assert report is not None
    assert (report.added, report.updated) == (0, 4)
    assert client.get_file_details("birds_a.jpg")["metadata"] == {"reviewed": True, "site": "north"}


def test_bad_files_are_recorded_and_the_rest_lands(
    client: Client, tmp_path: Path, session: Session
) -> None:
    root = tmp_path / "mixed"
    imagegen.image(root / "good.jpg")
    (root / "zero.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a jpeg")
    (root / "noise.png").write_bytes(bytes(range(256)) * 4)
    imagegen.video(root / "clip.mp4")  # a video in an image collection

    with pytest.warns(UserWarning, match="4 of 5 file"):
        cid = client.upload_files_to_collection(root, "image", "mixed")

    report = client.last_upload_report
    assert report is not None
    assert report.added == 1
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert set(reasons) == {"zero.jpg", "text.jpg", "noise.png", "clip.mp4"}
    assert "empty file" in reasons["zero.jpg"]
    # "not a readable image" either way: Pillow cannot identify it (or, in a process where
    # ultralytics patched Image.open, its HEIF fallback fails the same file).
    assert "not a readable image" in reasons["text.jpg"]
    assert "not a readable image" in reasons["noise.png"]
    assert "video file cannot join an image collection" in reasons["clip.mp4"]
    assert client.get_collection_details(cid)["file_count"] == 1
    rows = session.scalars(select(IngestFailure.path).where(IngestFailure.collection_id == cid))
    assert {Path(p).name for p in rows} == set(reasons)
    listed = client._get(f"/collections/{cid}/failures")
    assert listed["total"] == 4


def test_video_gets_fps_and_frame_count(client: Client, tmp_path: Path) -> None:
    root = tmp_path / "clips"
    imagegen.video(root / "walk.mp4", frames=12, fps=6.0, size=(64, 48))
    (root / "broken.mp4").write_text("not a video")

    with pytest.warns(UserWarning, match="1 of 2"):
        client.upload_files_to_collection(root, "video", "clips")

    report = client.last_upload_report
    assert report is not None
    assert report.added == 1
    assert "OpenCV" in report.failed[0].reason
    walk = client.get_file_details("clips_walk.mp4")
    assert walk["content_type"] == "video"
    assert walk["fps"] == pytest.approx(6.0)
    assert walk["frame_count"] == 12
    assert (walk["width"], walk["height"]) == (64, 48)


def test_single_file_upload(client: Client, tmp_path: Path) -> None:
    photo = imagegen.image(tmp_path / "deep" / "example_image.jpg")
    cid = client.upload_files_to_collection(str(photo), "image", "example_collection")
    item = client.get_file_details("example_collection_example_image.jpg")
    assert item["collections"] == ["example_collection"]
    assert client.get_collection_details(cid, ["file_count"]) == {"file_count": 1}


def test_exif_rotation_reports_the_displayed_size(client: Client, tmp_path: Path) -> None:
    imagegen.image(tmp_path / "rot" / "r.jpg", (64, 48), exif_orientation=6)
    imagegen.image(tmp_path / "rot" / "n.jpg", (64, 48), exif_orientation=1)
    client.upload_files_to_collection(tmp_path / "rot", "image", "rot")
    rotated = client.get_file_details("rot_r.jpg")
    assert (rotated["width"], rotated["height"]) == (48, 64)
    normal = client.get_file_details("rot_n.jpg")
    assert (normal["width"], normal["height"]) == (64, 48)


def test_unique_name_clash_inside_one_upload(client: Client, tmp_path: Path) -> None:
    imagegen.image(tmp_path / "c" / "a" / "b.jpg", seed=1)
    imagegen.image(tmp_path / "c" / "a_b.jpg", seed=2)
    with pytest.warns(UserWarning, match="also the name of"):
        client.upload_files_to_collection(tmp_path / "c", "image", "c")
    report = client.last_upload_report
    assert report is not None
    assert report.added == 1
    assert str(tmp_path) not in report.failed[0].reason  # read keys see reasons


def test_s3_prefix_is_registered_in_place(
    client: Client, s3: Any, bucket: str, tmp_path: Path
) -> None:
    local = imagegen.images(tmp_path / "src", ["a.jpg", "sub/b.png", "c.jpg"])
    s3.upload_file(str(local[0]), bucket, "photos/a.jpg")
    s3.upload_file(str(local[1]), bucket, "photos/sub/b.png")
    s3.upload_file(str(local[2]), bucket, "photos2/c.jpg")  # same prefix string, other folder
    s3.put_object(Bucket=bucket, Key="photos/.hidden.jpg", Body=local[0].read_bytes())
    s3.put_object(Bucket=bucket, Key="photos/bad.jpg", Body=b"nope")

    with pytest.warns(UserWarning, match="1 of 3"):
        cid = client.upload_files_to_collection(f"s3://{bucket}/photos", "image", "s3photos")

    report = client.last_upload_report
    assert report is not None
    assert report.added == 2
    b = client.get_file_details("s3photos_sub_b.png")
    assert b["storage_uri"] == f"s3://{bucket}/photos/sub/b.png"
    assert b["sha256"] == _sha(local[1])
    assert (b["width"], b["height"]) == (64, 48)
    content = httpx.get(b["url"], headers={"Authorization": f"Bearer {client.api_key}"})
    assert content.status_code == 200
    assert content.content == local[1].read_bytes()

    with pytest.warns(UserWarning, match="1 of 3"):
        client.upload_files_to_collection(f"s3://{bucket}/photos/", "image", "s3photos")
    report = client.last_upload_report
    assert report is not None
    assert (report.added, report.unchanged) == (0, 2)
    assert client.get_collection_details(cid)["file_count"] == 2

    client.upload_files_to_collection(f"s3://{bucket}/photos2/c.jpg", "image", "one")
    assert client.get_file_details("one_c.jpg")["sha256"] == _sha(local[2])

    with pytest.raises(BadRequest, match="does not exist"):
        client.upload_files_to_collection("s3://no-such-bucket-x/p", "image", "s3photos")
    with pytest.raises(BadRequest, match="Nothing to ingest"):
        client.upload_files_to_collection(f"s3://{bucket}/nothing-here", "image", "s3photos")


def test_bad_paths_are_clear_errors(client: Client, api_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(BadRequest, match="nope' does not exist"):
        client.upload_files_to_collection(missing, "image", "x")
    with pytest.raises(BadRequest, match="relative to"):
        client.upload_files_to_collection("surely/not/here", "image", "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadRequest, match="No image files under"):
        client.upload_files_to_collection(tmp_path / "empty", "image", "x")
    imagegen.video(tmp_path / "vids" / "v.mp4")
    with pytest.raises(BadRequest, match="upload those with the other content_type"):
        client.upload_files_to_collection(tmp_path / "vids", "image", "x")
    with pytest.raises(BadRequest, match="'image' or 'video'"):
        client.upload_files_to_collection(tmp_path / "vids", "audio", "x")

    url = f"{api_url}/api/v1/collections/ingest"
    headers = {"Authorization": f"Bearer {client.api_key}"}
    base = {"collection_name": "x", "content_type": "image"}
    relative = httpx.post(
        url,
        headers=headers,
        json={**base, "entries": [{"path": "pics/a.jpg", "relative_path": "a.jpg"}]},
    )
    assert relative.status_code == 400
    assert relative.json()["error"]["code"] == "invalid_path"
    assert "'pics/a.jpg' is relative; send the absolute path" in relative.json()["error"]["message"]
    gone = httpx.post(
        url,
        headers=headers,
        json={**base, "entries": [{"path": str(missing / "a.jpg"), "relative_path": "a.jpg"}]},
    )
    assert gone.status_code == 400
    assert f"{missing / 'a.jpg'}' does not exist" in gone.json()["error"]["message"]
    escape = imagegen.image(tmp_path / "ok.jpg")
    dotdot = httpx.post(
        url,
        headers=headers,
        json={**base, "entries": [{"path": str(escape), "relative_path": "../ok.jpg"}]},
    )
    assert dotdot.status_code == 400
    neither = httpx.post(url, headers=headers, json=base)
    assert neither.status_code == 400
    assert "either `entries`" in neither.json()["error"]["message"]
    # nothing was half-written
    assert client._get("/collections")["total"] == 0


def test_wrong_content_type_for_existing_collection_is_409(client: Client, tmp_path: Path) -> None:
    imagegen.image(tmp_path / "imgs" / "a.jpg")
    imagegen.video(tmp_path / "vids" / "v.mp4")
    client.upload_files_to_collection(tmp_path / "imgs", "image", "shared")
    with pytest.raises(Conflict, match="already holds images") as info:
        client.upload_files_to_collection(tmp_path / "vids", "video", "shared")
    assert info.value.status == 409
    assert info.value.code == "collection_content_type_mismatch"


def test_ingest_needs_a_write_key(api_url: str, make_key: Any, tmp_path: Path) -> None:
    imagegen.image(tmp_path / "p" / "a.jpg")
    with Client(api_url, make_key("read")) as reader, pytest.raises(Forbidden, match="write"):
        reader.upload_files_to_collection(tmp_path / "p", "image", "p")
    anonymous = httpx.post(
        f"{api_url}/api/v1/collections/ingest",
        json={
            "collection_name": "p",
            "content_type": "image",
            "entries": [{"path": str(tmp_path / "p" / "a.jpg"), "relative_path": "a.jpg"}],
        },
    )
    assert anonymous.status_code == 401
    # No METALAKE_INGEST_ROOTS here: only admin keys register paths of the engine's disk
    # (test_ingest_security.py has write keys under the roots).
    with (
        Client(api_url, make_key("write")) as writer,
        pytest.raises(Forbidden, match="METALAKE_INGEST_ROOTS"),
    ):
        writer.upload_files_to_collection(tmp_path / "p", "image", "p")
