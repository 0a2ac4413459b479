"""Bad and unusual images through ingest, managed upload and real analysis jobs.

A file that cannot be read carries its reason (in the upload report, or on the job item) and
the others are processed: truncated JPEGs, empty files, text named `.jpg`, decompression bombs
(a PNG header declaring 50,000 x 50,000 pixels). CMYK JPEGs and 16-bit PNGs are decoded with
the right pixels (16-bit scaled to 8 bits, not clipped), and boxes found on an EXIF-rotated
photo land where the shapes are in the rotated image the user sees.

The jobs run on a real `metalake worker` subprocess (tests/worker.py) with the trained shapes
detector and the random-weights ResNet50 of tests/fixtures. Zero-byte and text files in an
in-place ingest are covered by tests/test_ingest.py::test_bad_files_are_recorded_and_the_rest_lands.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.config import Settings
from engine.storage import file_uri
from sdk import Client
from tests.fixtures.payloads import iou
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

ORIENTATION = 0x0112
DISPLAYED = (320, 160)  # two 160 x 160 shape scenes side by side, as the user sees the photo
ROTATIONS = {  # EXIF orientation -> how the camera stored the pixels of the displayed image
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,  # the viewer turns it 90 degrees clockwise
    8: Image.Transpose.ROTATE_270,
}
Truth = list[tuple[str, list[float]]]


# -- files ---------------------------------------------------------------------------------------
def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(1 + width), 9))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(image: Image.Image, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, subsampling=0, **options)
    return out.getvalue()


def shapes_photo(first: int, seed: int = 21) -> tuple[Image.Image, Truth]:
    """Two scenes side by side (320 x 160) and their boxes in that image."""
    photo = Image.new("RGB", DISPLAYED)
    truth: Truth = []
    for offset, index in ((0, first), (160, first + 1)):
        s = scene(index, seed=seed)
        photo.paste(s.image.convert("RGB"), (offset, 0))
        truth += [
            (sh.label, [sh.box[0] + offset, sh.box[1], sh.box[2] + offset, sh.box[3]])
            for sh in s.shapes
        ]
    return photo, truth


def rotated_jpeg(photo: Image.Image, orientation: int) -> bytes:
    """The JPEG a camera writes: pixels as the sensor saw them plus the EXIF orientation that
    turns them into `photo`."""
    turn = ROTATIONS[orientation]
    stored = photo.transpose(turn) if turn is not None else photo
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = jpeg_bytes(stored, exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as check:  # the test's own data is what it claims
        shown = np.asarray(ImageOps.exif_transpose(check).convert("RGB"), dtype=np.int16)
    assert shown.shape == (DISPLAYED[1], DISPLAYED[0], 3)
    assert np.abs(shown - np.asarray(photo, dtype=np.int16)).mean() < 4
    return data


def cmyk_jpeg(photo: Image.Image) -> bytes:
    data = jpeg_bytes(photo.convert("CMYK"))
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    return data


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG (greyscale for (H, W), RGB for (H, W, 3)) of uint16 `pixels`."""
    import cv2

    array = pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., ::-1])
    ok, encoded = cv2.imencode(".png", array.astype(np.uint16))
    assert ok
    with Image.open(io.BytesIO(encoded.tobytes())) as check:
        assert check.mode in ("I;16", "RGB")
    return encoded.tobytes()


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


# -- ingest and upload ---------------------------------------------------------------------------
@pytest.fixture
def api_settings(
    request: pytest.FixtureRequest,
    settings: Settings,
    tmp_path: Path,
) -> Settings:
    """`in_place` (files registered where they are) or `managed` (copied into storage)."""
    if getattr(request, "param", "in_place") == "managed":
        return settings.model_copy(update={"managed_storage_url": file_uri(tmp_path / "lake")})
    return settings


@pytest.mark.parametrize("api_settings", ["in_place", "managed"], indirect=True)
def test_ingest_records_each_unreadable_file_with_its_reason(
    client: Client, api_settings: Settings, tmp_path: Path
) -> None:
    managed = api_settings.managed_storage_url is not None
    photo, _ = shapes_photo(0)
    folder = tmp_path / "upload"
    folder.mkdir()
    files = {
        "good.jpg": jpeg_bytes(photo),
        "truncated.jpg": truncated(jpeg_bytes(photo)),
        "bomb.png": bomb_png(),
        "cmyk.jpg": cmyk_jpeg(photo),
        "gray16.png": png16(np.linspace(0, 65535, 320 * 160).reshape(160, 320)),
        "rgb16.png": png16(np.asarray(photo, dtype=np.uint16) * 256 + 128),
        "rotated6.jpg": rotated_jpeg(photo, 6),
        "rotated8.jpg": rotated_jpeg(photo, 8),
    }
    if managed:  # in place, these two are tests/test_ingest.py's
        files |= {"zero.jpg": b"", "text.jpg": b"GPS log 2024-05-01 12:00 N 51.5 W 0.12\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)

    with pytest.warns(UserWarning, match=f"{3 if managed else 1} of {len(files)} file"):
        cid = client.upload_files_to_collection(folder, "image", "bad")
    report = client.last_upload_report
    assert report is not None
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    expected = {"bomb.png", "zero.jpg", "text.jpg"} if managed else {"bomb.png"}
    assert set(reasons) == expected
    assert reasons["bomb.png"].startswith("refused as a decompression bomb")
    assert "2500000000 pixels" in reasons["bomb.png"]
    assert "Downscale or tile the image" in reasons["bomb.png"]
    if managed:
        assert reasons["zero.jpg"] == "empty file (0 bytes)"
        assert "not a readable image" in reasons["text.jpg"]
    assert report.added == len(files) - len(expected)
    assert client.get_collection_details(cid)["file_count"] == report.added

    def size(name: str) -> tuple[int, int]:
        details = client.get_file_details(f"bad_{name}")
        return details["width"], details["height"]

    # The size as the user sees it: the rotated photos are 320 x 160 once turned.
    for name in ("good.jpg", "cmyk.jpg", "gray16.png", "rgb16.png", "rotated6.jpg", "rotated8.jpg"):
        assert size(name) == DISPLAYED, name
    # A truncated body behind a valid header is registered (ingest reads headers only); the
    # job that decodes it fails that item with the reason (test below).
    assert size("truncated.jpg") == DISPLAYED


# -- analysis jobs on a real worker --------------------------------------------------------------
def _machine_boxes(client: Client, unique_name: str) -> Truth:
    return [
        (a.label, [float(a.geometry[k]) for k in ("x1", "y1", "x2", "y2")])
        for a in client.list_annotations(unique_name, source="machine")
    ]


def test_a_job_fails_only_unreadable_items_and_boxes_land_on_the_rotated_view(
    client: Client,
    worker: Any,
    tmp_path: Path,
    shapes_detector_bundle: Path,
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    truth: dict[str, Truth] = {}
    for number, orientation in enumerate(ROTATIONS):
        photo, boxes = shapes_photo(2 * number)
        (folder / f"exif{orientation}.jpg").write_bytes(rotated_jpeg(photo, orientation))
        truth[f"photos_exif{orientation}.jpg"] = boxes
    photo, boxes = shapes_photo(10)
    (folder / "cmyk.jpg").write_bytes(cmyk_jpeg(photo))
    truth["photos_cmyk.jpg"] = boxes
    photo, boxes = shapes_photo(12)
    (folder / "rgb16.png").write_bytes(png16(np.asarray(photo, dtype=np.uint16) * 256 + 128))
    truth["photos_rgb16.png"] = boxes
    (folder / "truncated.jpg").write_bytes(truncated(jpeg_bytes(shapes_photo(14)[0])))
    # Registered while readable, then changed on disk (files are registered in place).
    later = {
        "emptied.jpg": b"",
        "overwritten.jpg": b"not a photo any more\n",
        "bomb.png": bomb_png(),
    }
    for name in later:
        (folder / name).write_bytes(jpeg_bytes(shapes_photo(16)[0]))
    cid = client.upload_files_to_collection(folder, "image", "photos")
    assert client.last_upload_report is not None
    assert client.last_upload_report.failed == []
    for name, data in later.items():
        (folder / name).write_bytes(data)

    client.register_model(shapes_detector_bundle, "shapes_yolo", "autotagging")
    job = client.auto_tag_collection(cid, "shapes_yolo", DISPLAYED, 0.5, None, None, "local")
    final = client.wait_for_job(job["job_id"], timeout=240, progress=False)
    assert final["status"] == "partially_failed", final
    assert (final["total"], final["done"], final["failed"]) == (10, 6, 4)
    reasons = {e["unique_name"]: e["error"] for e in final["errors"]}
    assert set(reasons) == {
        "photos_truncated.jpg",
        "photos_emptied.jpg",
        "photos_overwritten.jpg",
        "photos_bomb.png",
    }
    assert "image file is truncated" in reasons["photos_truncated.jpg"]
    assert "the file is empty (0 bytes)" in reasons["photos_emptied.jpg"]
    assert "cannot identify its format" in reasons["photos_overwritten.jpg"]
    assert "decompression bomb" in reasons["photos_bomb.png"]
    for reason in reasons.values():
        assert reason.startswith("cannot decode the image: ")
        assert reason.endswith("retry the job's failed items")
        assert "0x" not in reason  # no object addresses

    found = total = 0
    for name, expected in truth.items():
        got = _machine_boxes(client, name)
        assert got, name
        for label, box in got:  # every box is on a shape of its class, in the displayed image
            best = max((iou(box, t) for t_label, t in expected if t_label == label), default=0)
            assert best > 0.7, (name, label, box, expected)
        for label, box in expected:
            total += 1
            found += any(g_label == label and iou(g, box) > 0.7 for g_label, g in got)
    assert found / total >= 0.9, (found, total)


def test_cmyk_and_16_bit_images_are_embedded_from_their_true_pixels(
    client: Client,
    worker: Any,
    tmp_path: Path,
    resnet50_random_bundle: Path,
) -> None:
    """Each odd file's nearest neighbour is the 8-bit RGB image of the same pixels, not the
    image a wrong decode would give (inverted colours, values clipped to white)."""
    photo, _ = shapes_photo(20)
    rgb = np.asarray(photo, dtype=np.uint8)
    other_rgb = np.asarray(shapes_photo(24)[0], dtype=np.uint8)
    ramp = np.linspace(0, 65535, 224 * 224).reshape(224, 224)
    gray16 = np.clip(ramp + 6000 * np.sin(np.arange(224) / 9)[None, :], 0, 65535).astype(np.uint16)
    rgb16 = other_rgb.astype(np.uint16) * 256 + 200  # low bytes a wrong decode might read
    folder = tmp_path / "odd"
    folder.mkdir()
    files = {
        "cmyk.jpg": cmyk_jpeg(photo),
        "cmyk_ref.png": png(rgb),
        "cmyk_inverted.png": png(255 - rgb),
        "gray16.png": png16(gray16),
        "gray16_ref.png": png(np.rint(gray16 / 257.0)),
        "gray16_clipped.png": png(np.minimum(gray16, 255)),
        "gray16_low_byte.png": png(gray16 & 0xFF),
        "rgb16.png": png16(rgb16),
        "rgb16_ref.png": png(rgb16 >> 8),
        "rgb16_clipped.png": png(np.minimum(rgb16, 255)),
        "other.png": png(np.asarray(shapes_photo(22)[0])),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    cid = client.upload_files_to_collection(folder, "image", "odd")
    client.register_model(resnet50_random_bundle, "resnet_random", "embedding")
    job = client.generate_embeddings_for_collection(cid, "resnet_random", None, None, "local")
    final = client.wait_for_job(job["job_id"], timeout=240, progress=False)
    assert final["status"] == "succeeded", final
    assert final["done"] == len(files)

    for odd, minimum in (("cmyk.jpg", 0.95), ("gray16.png", 0.9999), ("rgb16.png", 0.9999)):
        nearest = client.get_similar_items(f"odd_{odd}", model_name="resnet_random", k=3)
        reference = f"odd_{odd.split('.')[0]}_ref.png"
        assert nearest[0]["unique_name"] == reference, (odd, nearest)
        assert nearest[0]["score"] >= minimum, (odd, nearest)
