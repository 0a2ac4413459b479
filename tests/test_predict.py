"""One image, one answer, over the real API with a real worker and the shapes detector the
suite trains; and lake items rendered with their annotations."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from engine.api.app import create_app
from engine.cli import app
from engine.config import Settings
from engine.interop.draw import label_color
from sdk import BadRequest, Client, NotFound, ServerError
from tests.conftest import serve_app
from tests.fixtures.bundle_factory import make_bundle
from tests.fixtures.payloads import iou
from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

SIZE = (400, 280)  # not the model's input (160 x 160), and not square
MODEL = "shapes_yolo"
SCENES = (0, 2, 3, 4)  # scenes the detector finds every shape of at 0.5 (ultralytics, 160 px)


def _scene_image(folder: Path, index: int) -> tuple[Path, list[tuple[str, list[float]]]]:
    """A generated scene stretched to SIZE, with its true boxes in SIZE's pixels."""
    s = scene(index, seed=7)
    sx, sy = SIZE[0] / s.image.width, SIZE[1] / s.image.height
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scene{index}.png"
    s.image.resize(SIZE, Image.Resampling.NEAREST).save(path)
    truth = [
        (sh.label, [sh.box[0] * sx, sh.box[1] * sy, sh.box[2] * sx, sh.box[3] * sy])
        for sh in s.shapes
    ]
    return path, truth


@pytest.fixture
def detector(client: Client, shapes_detector_bundle: Path) -> str:
    client.register_model(shapes_detector_bundle, MODEL, "autotagging")
    return MODEL


@pytest.mark.timeout(900)
def test_predict_finds_the_shapes_in_original_pixels(
    client: Client,
    api_url: str,
    admin_key: str,
    worker: Any,
    detector: str,
    tmp_path: Path,
) -> None:
    sx, sy = SIZE[0] / 160, SIZE[1] / 160  # original pixels per model input pixel
    for index in SCENES:
        path, truth = _scene_image(tmp_path, index)
        found = client.predict(path, detector, 0.5, input_resolution=160)
        assert len(found) == len(truth), (index, found, truth)
        for label, box in truth:
            same = [d for d in found if d["label"] == label]
            assert same, f"scene {index}: no {label} found in {found}"
            best = max(same, key=lambda d: iou(d["box"], box))
            assert best["shape"] == "box"
            assert best["geometry"] == dict(zip(("x1", "y1", "x2", "y2"), best["box"], strict=True))
            assert 0.5 <= best["confidence"] <= 1
            # within 3 of the model's pixels of the truth, in the original's (2.5 x 1.75 more)
            for found_at, true_at, scale in zip(best["box"], box, (sx, sy, sx, sy), strict=True):
                assert abs(found_at - true_at) <= 3 * scale, (index, best, box)

    # the annotated JPEG: the image at its own size, the JSON answer in X-Detections
    path, _ = _scene_image(tmp_path, 0)
    form = {"confidence_threshold": "0.5", "input_resolution": "160"}
    headers = {"Authorization": f"Bearer {admin_key}"}
    url = f"{api_url}/api/v1/models/{detector}/predict"
    as_json = httpx.post(
        url, files={"image": path.open("rb")}, data=form, headers=headers, timeout=120
    )
    assert as_json.status_code == 200, as_json.text
    as_jpeg = httpx.post(
        url,
        files={"image": path.open("rb")},
        data=form,
        headers={**headers, "Accept": "image/jpeg"},
        timeout=120,
    )
    assert as_jpeg.status_code == 200, as_jpeg.text
    assert as_jpeg.headers["content-type"] == "image/jpeg"
    drawn = Image.open(io.BytesIO(as_jpeg.content))
    assert drawn.format == "JPEG"
    assert drawn.size == SIZE
    answer = as_json.json()
    assert json.loads(as_jpeg.headers["x-detections"]) == answer
    assert (answer["width"], answer["height"]) == SIZE
    assert answer["model"] == detector
    assert answer["model_version"] == 1
    # the boxes are drawn where they are: the label's colour along the top edge
    first = answer["detections"][0]
    x1, y1, x2, _ = (round(v) for v in first["box"])
    rgb = drawn.convert("RGB")
    color = label_color(first["label"])
    along = [rgb.getpixel((x, y1)) for x in range(x1 + 2, x2 - 2)]
    close = [p for p in along if all(abs(a - b) < 60 for a, b in zip(p, color, strict=True))]  # type: ignore[arg-type]
    assert len(close) > len(along) / 3

    # the shell: the same detections, and the drawing
    out = tmp_path / "cli.jpg"
    env = {"METALAKE_URL": api_url, "METALAKE_API_KEY": admin_key}
    args = [
        "predict",
        str(path),
        "--model",
        detector,
        "--resolution",
        "160",
        "--annotated",
        str(out),
    ]
    result = CliRunner().invoke(app, args, env=env, prog_name="metalake")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout) == answer["detections"]
    assert Image.open(out).size == SIZE
    refused = CliRunner().invoke(
        app, ["predict", str(path), "--model", "nope"], env=env, prog_name="metalake"
    )
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: No autotagging model named 'nope'")


@pytest.mark.timeout(900)
def test_predict_refuses_bad_input_clearly(
    client: Client,
    worker: Any,
    detector: str,
    tmp_path: Path,
) -> None:
    path, _ = _scene_image(tmp_path, 1)
    not_image = tmp_path / "notes.png"
    not_image.write_text("these are words, not pixels")
    with pytest.raises(BadRequest, match="not a readable image") as refused:
        client.predict(not_image, detector)
    assert refused.value.code == "unreadable_file"
    with pytest.raises(NotFound, match="No autotagging model named 'no_such_model'"):
        client.predict(path, "no_such_model")
    with pytest.raises(BadRequest, match="confidence_threshold must be a number between 0 and 1"):
        client.predict(path, detector, confidence_threshold=1.5)
    with pytest.raises(BadRequest, match="input_resolution must be"):
        client.predict(path, detector, input_resolution=4)
    client.register_model(make_bundle(tmp_path / "emb", "embedding"), "vectors", "embedding")
    with pytest.raises(BadRequest, match="'vectors' is an embedding model"):
        client.predict(path, "vectors")


def test_predict_without_a_worker_is_a_503(
    client: Client,
    settings: Settings,
    make_key: Callable[..., str],
    tmp_path: Path,
) -> None:
    client.register_model(make_bundle(tmp_path / "m"), "lonely", "autotagging")
    impatient = settings.model_copy(update={"predict_timeout": 2.0})
    app = create_app(impatient)
    try:
        for url in serve_app(app):
            with Client(url, make_key("read")) as reader:
                path, _ = _scene_image(tmp_path, 2)
                with pytest.raises(ServerError, match="No worker took the prediction") as no:
                    reader.predict(path, "lonely")
                assert no.value.status == 503
                assert no.value.code == "no_worker_available"
    finally:
        app.state.db_engine.dispose()


def test_render_draws_an_items_annotations(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "lake"
    folder.mkdir()
    Image.new("RGB", (320, 240), (30, 30, 30)).save(folder / "dark.png")
    collection_id = client.upload_files_to_collection(folder, "image", "render")
    name = "render_dark.png"
    client.add_annotations(
        name,
        [
            {
                "label": "square",
                "shape": "box",
                "geometry": {"x1": 40, "y1": 50, "x2": 200, "y2": 180},
            },
        ],
    )
    out = client.render_item(name, tmp_path / "drawn.jpg", sources=["human"])
    drawn = Image.open(out).convert("RGB")
    assert drawn.size == (640, 480)  # a small image is scaled up (x2) for readable captions
    color = label_color("square")

    def near(p: Any) -> bool:
        return all(abs(a - b) < 50 for a, b in zip(p, color, strict=True))

    left = [drawn.getpixel((80, y)) for y in range(110, 350)]
    bottom = [drawn.getpixel((x, 360)) for x in range(90, 390)]
    assert all(near(p) for p in left + bottom)
    assert not near(drawn.getpixel((240, 230)))  # inside the box: the image's own grey

    # by id too; machine only leaves the human box out
    [item] = client.get_item_list_from_collection(collection_id)
    plain = client.render_item(item["id"], tmp_path / "plain.jpg", sources=["machine"])
    assert not near(Image.open(plain).convert("RGB").getpixel((80, 200)))

    with pytest.raises(BadRequest, match="sources must be"):
        client.render_item(name, tmp_path / "x.jpg", sources=["robots"])
    with pytest.raises(NotFound):
        client.render_item("render_missing.png", tmp_path / "x.jpg")
