"""What the export writers share: media placement, the image size they scale by, and the
geometry conversions between the lake's shapes."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, UnidentifiedImageError

from engine.errors import ExportNotPossible
from engine.interop.records import ExportAnnotation, ExportImage, ExportSink

UNSPLIT = "train"


def write_media(sink: ExportSink, folder: str, image: ExportImage, media: bytes | None) -> None:
    """Copy the image bytes to `<folder>/<image.path>` when the service handed them over."""
    if media is not None:
        sink.write(f"{folder}/{image.path}" if folder else image.path, media)


def require_image(image: ExportImage, format: str) -> None:
    """The image formats hold still images; a video is refused by name."""
    if image.content_type != "image":
        raise ExportNotPossible(
            f"{image.unique_name!r} is a {image.content_type}, and {format} holds still images; "
            f"export videos as metalake_json, which keeps each annotation's frame_index.",
            unique_name=image.unique_name,
            format=format,
        )


def image_size(image: ExportImage, media: bytes | None) -> tuple[int, int]:
    """The image's width and height: the lake's, else read from the bytes' header."""
    if image.width and image.height:
        return image.width, image.height
    if media is not None:
        try:
            with Image.open(io.BytesIO(media)) as opened:
                return opened.size
        except (UnidentifiedImageError, OSError, ImportError) as exc:  # ImportError: draw.py
            raise _unknown_size(image) from exc
    raise _unknown_size(image)


def _unknown_size(image: ExportImage) -> ExportNotPossible:
    return ExportNotPossible(
        f"The lake does not know the size of {image.unique_name!r} and its bytes could not be "
        f"read, so its annotations cannot be written in this format; re-ingest the file or "
        f"export it as metalake_json (pixel coordinates need no size).",
        unique_name=image.unique_name,
    )


def label_ids(labels: tuple[str, ...], start: int) -> dict[str, int]:
    """Class ids in the order of `ExportOptions.labels`, counting from `start`."""
    return {label: i for i, label in enumerate(labels, start=start)}


def label_id(ids: dict[str, int], ann: ExportAnnotation, image: ExportImage) -> int:
    """The class id of `ann`'s label; a label missing from `ExportOptions.labels` is refused."""
    found = ids.get(ann.label)
    if found is None:
        raise ExportNotPossible(
            f"Annotation {ann.id} of {image.unique_name!r} has label {ann.label!r}, which is not "
            f"in the export's label list; pass every label of the selection in labels.",
            unique_name=image.unique_name,
            label=ann.label,
        )
    return found


def stem(path: str) -> str:
    """`a/b/c.jpg` -> `a/b/c` (the folders are kept, so two `c.jpg` do not collide)."""
    head, _, name = path.rpartition("/")
    base = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    return f"{head}/{base}" if head else base


class StemClaims:
    """Formats that name a file by the image's path without its extension (YOLO labels, VOC
    documents) cannot hold `a.jpg` and `a.png` of one folder: the second is refused by name."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}

    def claim(self, path: str, image: ExportImage) -> None:
        owner = self.owners.setdefault(path, image.unique_name)
        if owner != image.unique_name:
            raise ExportNotPossible(
                f"{owner!r} and {image.unique_name!r} would both be written as {path!r} (same "
                f"folder and name, different extensions), which this format cannot tell apart; "
                f"leave one out of the selection, or export as coco or metalake_json.",
                path=path,
                unique_names=[owner, image.unique_name],
            )


def box_corners(ann: ExportAnnotation) -> tuple[float, float, float, float]:
    """A box's (x1, y1, x2, y2); for a polygon or keypoints, the box around its points."""
    g = ann.geometry
    if ann.shape == "box":
        return float(g["x1"]), float(g["y1"]), float(g["x2"]), float(g["y2"])
    points = [p for p in g.get("points", []) if ann.shape != "keypoints" or p[2] > 0]
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def polygon_of(ann: ExportAnnotation) -> list[list[float]]:
    """A polygon's points; a box as its 4 corners, clockwise from the top-left."""
    if ann.shape == "polygon":
        return [[float(p[0]), float(p[1])] for p in ann.geometry["points"]]
    x1, y1, x2, y2 = box_corners(ann)
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def has_extent(ann: ExportAnnotation) -> bool:
    """Boxes and polygons (and keypoints with a visible point) have a region to draw."""
    if ann.shape in ("box", "polygon"):
        return True
    if ann.shape == "keypoints":
        return any(p[2] > 0 for p in ann.geometry.get("points", []))
    return False


def compact(value: Any) -> str:
    """One row of a single-document format, serialised as it arrives: a string costs a few
    times less memory than the dicts it came from, and the document is joined at the end."""
    return json.dumps(value, ensure_ascii=False)


def json_list(rows: list[str]) -> str:
    """A JSON list of serialised rows, one per line."""
    return "[\n" + ",\n".join(rows) + "\n]" if rows else "[]"


def json_number(value: float) -> Any:
    """Whole floats as ints, so documents read `10` rather than `10.0`."""
    return int(value) if float(value).is_integer() else value
