"""Annotations drawn onto their image: boxes, polygons and keypoints, each label in its own
colour with its name (and a machine annotation's score), human ones in solid lines, machine
ones dashed. Small images are scaled up first so the text stays readable.
"""

from __future__ import annotations

import io
import itertools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from engine.errors import UnreadableFile

MIN_SIDE = 480  # a smaller image is scaled up (whole times) until its short side reaches this
JPEG_QUALITY = 90
# Distinct, readable on photos; a label keeps its colour in every image (by a hash of its name).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 225, 25),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (0, 0, 128),
    (255, 215, 180),
)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


class Drawable(Protocol):
    """What is drawn of an annotation (`ExportAnnotation` is one; geometry in original pixels,
    as docs/annotations.md)."""

    @property
    def label(self) -> str: ...

    @property
    def shape(self) -> str: ...

    @property
    def geometry(self) -> Mapping[str, Any]: ...

    @property
    def confidence(self) -> float | None: ...

    @property
    def source(self) -> str: ...


@dataclass(frozen=True)
class Mark:
    """A `Drawable` made from loose values (a prediction, a stored annotation's fields)."""

    label: str
    shape: str
    geometry: Mapping[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    source: str = "machine"


def label_color(label: str) -> tuple[int, int, int]:
    """The colour `label` is drawn in, the same in every image and every run."""
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


def open_image(data: bytes) -> Image.Image:
    """The image file `data` upright (EXIF orientation applied) in RGB, as annotations see it."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise UnreadableFile(f"the image is refused as a decompression bomb: {exc}") from exc
    # ImportError: a process that imported ultralytics has Image.open patched to try a HEIF
    # plugin on bytes Pillow cannot identify, and that plugin may not be installed.
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as exc:
        raise UnreadableFile(
            "the file is not a readable image (Pillow cannot decode it); send a JPEG, PNG or "
            "other image file"
        ) from exc


def draw(
    image: Image.Image, annotations: Iterable[Drawable], *, min_side: int = MIN_SIDE
) -> Image.Image:
    """A copy of `image` (RGB) with `annotations` drawn on it, scaled up by a whole factor when
    its short side is under `min_side` (0: never scaled)."""
    scale = max(1, -(-min_side // max(1, min(image.size)))) if min_side > 0 else 1
    canvas = image.convert("RGB")
    if scale > 1:
        size = (image.width * scale, image.height * scale)
        canvas = canvas.resize(size, Image.Resampling.NEAREST)
    else:
        canvas = canvas.copy()
    width = max(2, round(min(canvas.size) / 160))
    font = ImageFont.load_default(size=max(12, round(min(canvas.size) / 32)))
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    fills = ImageDraw.Draw(overlay)
    pen = ImageDraw.Draw(canvas)
    tags: list[tuple[tuple[float, float], str, tuple[int, int, int]]] = []
    for ann in annotations:
        color = label_color(ann.label)
        dashed = ann.source == "machine"
        points = _points(ann, scale)
        if ann.shape == "box" and points:
            x1, y1 = points[0]
            _outline(pen, points, color, width, dashed=dashed)
            tags.append(((x1, y1), _caption(ann), color))
        elif ann.shape == "polygon" and len(points) >= 3:
            fills.polygon(points, fill=(*color, 60))
            _outline(pen, points, color, width, dashed=dashed)
            left = min(x for x, _ in points)
            top = min(y for _, y in points)
            tags.append(((left, top), _caption(ann), color))
        elif ann.shape == "keypoints":
            visible = _keypoints(ann, scale)
            radius = width + 2
            for x, y, v in visible:
                box = (x - radius, y - radius, x + radius, y + radius)
                pen.ellipse(box, fill=color if v >= 2 else None, outline=color, width=width)
            if visible:
                left = min(x for x, _, _ in visible)
                top = min(y for _, y, _ in visible)
                tags.append(((left, top - radius), _caption(ann), color))
    canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    pen = ImageDraw.Draw(canvas)
    for corner, text, color in tags:  # on top of every line, so no box hides a label
        _tag(pen, corner, text, color, font, canvas.size)
    return canvas


def annotated_jpeg(
    data: bytes, annotations: Iterable[Drawable], *, min_side: int = MIN_SIDE
) -> bytes:
    """The image file `data` with `annotations` drawn, as JPEG bytes."""
    return jpeg_bytes(draw(open_image(data), annotations, min_side=min_side))


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _caption(ann: Drawable) -> str:
    if ann.source == "machine" and ann.confidence is not None:
        return f"{ann.label} {ann.confidence:.2f}"
    return ann.label


def _points(ann: Drawable, scale: int) -> list[tuple[float, float]]:
    """The outline of a box (4 corners, clockwise from top-left) or polygon, scaled."""
    g = ann.geometry
    try:
        if ann.shape == "box":
            x1, y1, x2, y2 = (float(g[k]) * scale for k in ("x1", "y1", "x2", "y2"))
            return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        if ann.shape == "polygon":
            return [(float(p[0]) * scale, float(p[1]) * scale) for p in g["points"]]
    except (KeyError, TypeError, ValueError, IndexError):
        return []  # a geometry that is not of its shape is not drawn
    return []


def _keypoints(ann: Drawable, scale: int) -> list[tuple[float, float, int]]:
    try:
        return [
            (float(p[0]) * scale, float(p[1]) * scale, int(p[2]) if len(p) > 2 else 2)
            for p in ann.geometry["points"]
            if len(p) < 3 or int(p[2]) > 0
        ]
    except (KeyError, TypeError, ValueError, IndexError):
        return []


def _outline(
    pen: ImageDraw.ImageDraw,
    points: Sequence[tuple[float, float]],
    color: tuple[int, int, int],
    width: int,
    *,
    dashed: bool,
) -> None:
    closed = [*points, points[0]]
    if not dashed:
        pen.line(closed, fill=color, width=width, joint="curve")
        return
    dash = 4 * width
    for (ax, ay), (bx, by) in itertools.pairwise(closed):
        length = max(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5, 1e-9)
        step = 0.0
        while step < length:
            end = min(step + dash, length)
            start_xy = (ax + (bx - ax) * step / length, ay + (by - ay) * step / length)
            end_xy = (ax + (bx - ax) * end / length, ay + (by - ay) * end / length)
            pen.line([start_xy, end_xy], fill=color, width=width)
            step += 1.6 * dash  # dash, then a gap of 0.6 dash


def _tag(
    pen: ImageDraw.ImageDraw,
    corner: tuple[float, float],
    text: str,
    color: tuple[int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    size: tuple[int, int],
) -> None:
    """`text` on a patch of `color` above `corner` (below it at the image's top edge)."""
    left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    x = min(max(corner[0], 0), max(size[0] - w, 0))
    y = corner[1] - h if corner[1] - h >= 0 else corner[1]
    pen.rectangle((x, y, x + w, y + h), fill=color)
    ink = BLACK if sum(color) > 450 else WHITE
    pen.text((x + 3 - left, y + 2 - top), text, fill=ink, font=font)
