"""Drawing annotations onto images, and the "annotated" export's layout."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from engine.errors import UnreadableFile
from engine.interop.draw import Mark, annotated_jpeg, draw, label_color, open_image
from engine.interop.formats.annotated import AnnotatedWriter
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions

GREY = (128, 128, 128)


def png(width: int, height: int, color: tuple[int, int, int] = GREY) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def near(pixel: tuple[int, ...], color: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=False))


def edge_share(
    image: Image.Image, box: tuple[int, int, int, int], color: tuple[int, int, int]
) -> float:
    """The share of pixels along the four sides of `box` that are near `color`."""
    x1, y1, x2, y2 = box
    points = [(x, y) for x in range(x1, x2 + 1) for y in (y1, y2)]
    points += [(x, y) for y in range(y1, y2 + 1) for x in (x1, x2)]
    rgb = image.convert("RGB")
    return sum(near(rgb.getpixel(p), color) for p in points) / len(points)  # type: ignore[arg-type]


def test_a_human_box_is_drawn_solid_in_its_labels_colour() -> None:
    image = open_image(png(640, 480))
    box = {"x1": 100, "y1": 120, "x2": 300, "y2": 400}
    drawn = draw(image, [Mark("square", "box", box, None, "human")])
    assert drawn.size == (640, 480)
    color = label_color("square")
    assert edge_share(drawn, (100, 120, 300, 400), color) > 0.95
    assert near(drawn.getpixel((200, 260)), GREY, 2)  # type: ignore[arg-type]  # inside: untouched
    assert near(drawn.getpixel((500, 60)), GREY, 2)  # type: ignore[arg-type]


def test_a_machine_box_is_dashed_and_captioned_with_its_score() -> None:
    image = open_image(png(640, 480))
    box = {"x1": 100, "y1": 150, "x2": 500, "y2": 400}
    human = draw(image, [Mark("circle", "box", box, None, "human")])
    machine = draw(image, [Mark("circle", "box", box, 0.87, "machine")])
    color = label_color("circle")
    share = edge_share(machine, (100, 150, 500, 400), color)
    assert 0.4 < share < 0.9  # dashes and gaps
    above = (100, 110, 300, 148)  # where the caption patch sits, above the box
    caption_human = human.crop(above)
    caption_machine = machine.crop(above)
    # the machine caption ("circle 0.87") is wider than the human one ("circle")
    assert _colored_width(caption_machine, color) > _colored_width(caption_human, color) + 10


def _colored_width(image: Image.Image, color: tuple[int, int, int]) -> int:
    rgb = image.convert("RGB")
    columns = [
        x
        for x in range(rgb.width)
        if any(near(rgb.getpixel((x, y)), color) for y in range(rgb.height))  # type: ignore[arg-type]
    ]
    return max(columns) - min(columns) + 1 if columns else 0


def test_labels_keep_their_colour_and_differ_from_each_other() -> None:
    assert label_color("square") == label_color("square")
    assert len({label_color(name) for name in ("square", "circle", "triangle", "star")}) >= 3


def test_polygons_are_filled_and_keypoints_marked() -> None:
    image = open_image(png(600, 600, (0, 0, 0)))
    triangle = {"points": [[100, 500], [300, 100], [500, 500]]}
    keypoints = {"points": [[50, 50, 2], [550, 50, 0]]}
    drawn = draw(
        image,
        [
            Mark("triangle", "polygon", triangle, 0.9, "machine"),
            Mark("nose", "keypoints", keypoints, None, "human"),
        ],
    )
    inside = drawn.getpixel((300, 400))
    assert inside != (0, 0, 0)  # type: ignore[comparison-overlap]  # the translucent fill
    assert near(drawn.getpixel((50, 50)), label_color("nose"))  # type: ignore[arg-type]
    assert drawn.getpixel((550, 50)) == (0, 0, 0)  # an absent keypoint is not drawn


def test_small_images_are_scaled_up_and_boxes_with_them() -> None:
    box = {"x1": 10, "y1": 10, "x2": 50, "y2": 30}
    jpeg = annotated_jpeg(png(80, 60), [Mark("square", "box", box, None, "human")])
    drawn = Image.open(io.BytesIO(jpeg))
    assert drawn.format == "JPEG"
    assert drawn.size == (640, 480)  # x8: the short side reaches 480
    assert edge_share(drawn, (80, 80, 400, 240), label_color("square")) > 0.9
    original = annotated_jpeg(png(80, 60), [], min_side=0)
    assert Image.open(io.BytesIO(original)).size == (80, 60)


def test_exif_rotation_is_applied_before_drawing() -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 400x200, shown 200x400
    Image.new("RGB", (400, 200), GREY).save(buffer, format="JPEG", exif=exif)
    assert open_image(buffer.getvalue()).size == (200, 400)


def test_not_an_image_is_refused_with_the_reason() -> None:
    with pytest.raises(UnreadableFile, match="not a readable image"):
        annotated_jpeg(b"plain text, not pixels", [])


class MemorySink:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write(self, path: str, data: bytes) -> None:
        assert path not in self.files, path
        self.files[path] = data


def annotation(
    id: int, label: str, shape: str, geometry: dict[str, object], **kw: object
) -> ExportAnnotation:
    values: dict[str, object] = {"confidence": None, "source": "human", "status": "applied"}
    values.update(kw)
    return ExportAnnotation(id=id, label=label, shape=shape, geometry=geometry, **values)  # type: ignore[arg-type]


def export_image(path: str, annotations: tuple[ExportAnnotation, ...], **kw: object) -> ExportImage:
    values: dict[str, object] = {
        "file_id": 1,
        "unique_name": "shapes_" + path.replace("/", "_"),
        "path": path,
        "width": 640,
        "height": 480,
        "sha256": "0" * 64,
        "size_bytes": 1,
        "content_type": "image",
        "annotations": annotations,
    }
    values.update(kw)
    return ExportImage(**values)  # type: ignore[arg-type]


def test_annotated_export_layout() -> None:
    sink = MemorySink()
    writer = AnnotatedWriter(sink, ExportOptions(labels=("circle", "square"), include_media=True))
    assert writer.needs_media
    first = export_image(
        "train/a.png",
        (
            annotation(1, "circle", "box", {"x1": 10, "y1": 20, "x2": 110, "y2": 70}),
            annotation(
                2,
                "square",
                "polygon",
                {"points": [[300, 300], [400, 300], [400, 380]]},
                confidence=0.8,
                source="machine",
            ),
            annotation(3, "outdoor", "tag", {}),
        ),
    )
    second = export_image(
        "b.png", (annotation(4, "circle", "box", {"x1": 0, "y1": 0, "x2": 10, "y2": 10}),)
    )
    broken = export_image("c.png", (), file_id=3)
    writer.add(first, png(640, 480))
    writer.add(second, png(640, 480))
    writer.add(broken, b"not an image")
    writer.finish()

    assert sorted(sink.files) == [
        "annotated/b_annotated.jpg",
        "annotated/train/a_annotated.jpg",
        "classes/circle.json",
        "classes/square.json",
        "images/b.png",
        "images/c.png",
        "images/train/a.png",
        "labels/b.json",
        "labels/c.json",
        "labels/train/a.json",
    ]
    drawn = Image.open(io.BytesIO(sink.files["annotated/train/a_annotated.jpg"]))
    assert drawn.format == "JPEG"
    assert drawn.size == (640, 480)
    assert edge_share(drawn, (10, 20, 110, 70), label_color("circle")) > 0.9

    labels = json.loads(sink.files["labels/train/a.json"])
    assert labels["image"] == "train/a.png"
    assert labels["drawing"] == "annotated/train/a_annotated.jpg"
    assert labels["tags"] == ["outdoor"]
    assert sorted(labels["detections"]) == ["circle", "square"]
    assert labels["detections"]["circle"][0]["bbox"] == [10, 20, 110, 70]
    assert labels["detections"]["circle"][0]["area"] == 5000
    square = labels["detections"]["square"][0]
    assert square["bbox"] == [300, 300, 400, 380]
    assert square["confidence"] == 0.8
    assert square["source"] == "machine"

    failed = json.loads(sink.files["labels/c.json"])
    assert failed["drawing"] is None
    assert "not a readable image" in failed["error"]

    circle = json.loads(sink.files["classes/circle.json"])
    assert circle["category"] == "circle"
    assert circle["images"] == [
        {"id": 1, "file_name": "train/a.png"},
        {"id": 2, "file_name": "b.png"},
    ]
    assert [(a["image_id"], a["bbox"]) for a in circle["annotations"]] == [
        (1, [10, 20, 110, 70]),
        (2, [0, 0, 10, 10]),
    ]


def test_class_file_names_are_safe_and_unique() -> None:
    sink = MemorySink()
    writer = AnnotatedWriter(sink, ExportOptions(labels=(), include_media=False))
    box = {"x1": 0, "y1": 0, "x2": 5, "y2": 5}
    writer.add(
        export_image(
            "a.png",
            (
                annotation(1, "traffic/light", "box", box),
                annotation(2, "traffic light", "box", box),
                annotation(3, "../up", "box", box),
            ),
        ),
        png(20, 20),
    )
    writer.finish()
    classes = sorted(p for p in sink.files if p.startswith("classes/"))
    assert classes == [
        "classes/traffic_light.json",
        "classes/traffic_light_2.json",
        "classes/up.json",
    ]
    categories = {json.loads(sink.files[p])["category"] for p in classes}
    assert categories == {"traffic/light", "traffic light", "../up"}
    assert not any(p.startswith("images/") for p in sink.files)
