"""Pixel geometry as the lake stores it, and the checks every annotation passes on the way in.

Stored geometry is in pixels of the original image: box `{"x1", "y1", "x2", "y2"}`, polygon
`{"points": [[x, y], ...]}`, keypoints `{"points": [[x, y, v], ...]}`, tag `{}`.

Bounds: when the image size is known, coordinates up to 1 px (normalized: 0.001) outside the
image are clamped onto its edge (exporters round); anything further out is an error. A box must
keep x1 < x2 and y1 < y2 after clamping. Normalized coordinates need the image size.
"""

from __future__ import annotations

from typing import Any

from engine.lake.formats.parsed import (
    ParsedAnnotation,
    Problems,
    Shape,
    keypoint_triples,
    numbers,
    polygon_points,
)

PIXEL_TOLERANCE = 1.0
NORMALIZED_TOLERANCE = 1e-3
DECIMALS = 4


def to_geometry(
    ann: ParsedAnnotation, *, width: int | None, height: int | None, image: str, problems: Problems
) -> dict[str, Any] | None:
    """Pixel geometry for `ann` on an image of `width` x `height`, or None (problem recorded)."""
    if ann.shape == "tag":
        return {}
    if ann.normalized:
        if not width or not height:
            problems.add(
                ann.where,
                ann.field,
                f"coordinates are normalized (0..1) but the lake does not know the size "
                f"of {image!r}; send pixel coordinates for it instead.",
            )
            return None
        limits: tuple[float, float] | None = (1.0, 1.0)
        scale, tolerance = (float(width), float(height)), NORMALIZED_TOLERANCE
    else:
        limits = (float(width), float(height)) if width and height else None
        scale, tolerance = (1.0, 1.0), PIXEL_TOLERANCE

    points: list[list[float]] = []
    for point in ann.values:
        x, y, *rest = point
        # A box is one (x1, y1, x2, y2) "point": check both corners.
        corners = [(x, y), (rest[0], rest[1])] if ann.shape == "box" else [(x, y)]
        visible = ann.shape != "keypoints" or rest[0] > 0
        if limits is not None and visible:
            for cx, cy in corners:
                if not (
                    -tolerance <= cx <= limits[0] + tolerance
                    and -tolerance <= cy <= limits[1] + tolerance
                ):
                    problems.add(
                        ann.where, ann.field, _outside(cx, cy, limits, ann.normalized, image)
                    )
                    return None
            point = tuple(
                _clamp(v, limits[i % 2]) if i < 2 or ann.shape == "box" else v
                for i, v in enumerate(point)
            )
        scaled = [
            round(v * scale[i % 2], DECIMALS) if i < 2 or ann.shape == "box" else v
            for i, v in enumerate(point)
        ]
        points.append(scaled)

    if ann.shape == "box":
        x1, y1, x2, y2 = points[0]
        if not (x1 < x2 and y1 < y2):
            problems.add(
                ann.where,
                ann.field,
                f"a box needs x1 < x2 and y1 < y2 inside the image "
                f"(got x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g} in pixels).",
            )
            return None
        return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
    return {"points": points}


def parse_stored(
    shape: Shape, geometry: Any, where: str, problems: Problems
) -> tuple[tuple[float, ...], ...] | None:
    """Read geometry in the stored (pixel) form back into parsed values, checking its shape."""
    if not isinstance(geometry, dict):
        problems.add(where, "geometry", f"must be an object (got {type(geometry).__name__}).")
        return None
    if shape == "tag":
        return ()
    if shape == "box":
        corners = numbers([geometry.get(k) for k in ("x1", "y1", "x2", "y2")], 4)
        if corners is None:
            problems.add(
                where,
                "geometry",
                f'a box needs {{"x1", "y1", "x2", "y2"}} as numbers in pixels (got {geometry!r}).',
            )
            return None
        return (tuple(corners),)
    if shape == "polygon":
        return polygon_points(geometry.get("points"), where, "geometry.points", problems)
    return keypoint_triples(geometry.get("points"), where, "geometry.points", problems)


def _clamp(value: float, limit: float) -> float:
    return min(max(value, 0.0), limit)


def _outside(x: float, y: float, limits: tuple[float, float], normalized: bool, image: str) -> str:
    if normalized:
        return (
            f"point ({x:g}, {y:g}) is outside 0..1; normalized coordinates are fractions of "
            f"the image size (pass is_normalized=False for pixel coordinates)."
        )
    return (
        f"point ({x:g}, {y:g}) is outside the {limits[0]:g}x{limits[1]:g} image {image!r}; "
        f"pixel coordinates must lie inside the image (if they are fractions of its size, "
        f"they are normalized: pass is_normalized=True)."
    )
