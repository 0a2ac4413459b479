"""Label Studio tasks JSON: one task per image, human annotations as the task's `annotations`,
machine ones as `predictions` (one per model version), regions in percent of the image.

`results_for` and `label_config` are the pieces the Label Studio bridge shares: the results of
one image and the labeling config they fit. Boxes are `rectanglelabels` (control `from_name`),
polygons `polygonlabels` (control `<from_name>_polygon`), tags `choices` (control
`<from_name>_tags`); keypoints are not written. Layout and mapping: docs/export-formats.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from engine.errors import ExportNotPossible
from engine.interop.formats.common import (
    box_corners,
    compact,
    image_size,
    json_list,
    require_image,
    write_media,
)
from engine.interop.records import ExportAnnotation, ExportImage, ExportOptions, ExportSink

TASKS_FILE = "tasks.json"
CONFIG_FILE = "label_config.xml"
MEDIA_FOLDER = "images"
IMAGE_KEY = "image"  # the task's data key the config's <Image value="$image"> reads
PATH_KEY = "metalake_path"  # the image's path in the export, read back by the importer


def polygon_control(from_name: str) -> str:
    return f"{from_name}_polygon"


def tags_control(from_name: str) -> str:
    return f"{from_name}_tags"


def results_for(
    annotations: Iterable[ExportAnnotation],
    *,
    width: int,
    height: int,
    from_name: str = "label",
    to_name: str = "image",
    tags: bool = False,
) -> list[dict[str, Any]]:
    """Label Studio results for the boxes and polygons of one `width` x `height` image
    (coordinates in percent of it); tags as `choices` only when `tags`. A machine annotation's
    confidence is the result's `score`; a proposed one says so in the region's `meta`."""
    if width <= 0 or height <= 0:
        raise ExportNotPossible(
            f"Label Studio regions are percentages of the image size; got {width}x{height}.",
            width=width,
            height=height,
        )
    results: list[dict[str, Any]] = []
    for ann in annotations:
        value: dict[str, Any]
        if ann.shape == "box":
            x1, y1, x2, y2 = box_corners(ann)
            kind, name = "rectanglelabels", from_name
            value = {
                "x": 100 * x1 / width,
                "y": 100 * y1 / height,
                "width": 100 * (x2 - x1) / width,
                "height": 100 * (y2 - y1) / height,
                "rotation": 0,
            }
        elif ann.shape == "polygon":
            kind, name = "polygonlabels", polygon_control(from_name)
            value = {
                "points": [
                    [100 * float(p[0]) / width, 100 * float(p[1]) / height]
                    for p in ann.geometry["points"]
                ],
                "closed": True,
            }
        elif ann.shape == "tag" and tags:
            kind, name = "choices", tags_control(from_name)
            value = {}
        else:
            continue
        value[kind] = [ann.label]
        result: dict[str, Any] = {
            "id": f"metalake-{ann.id}",
            "from_name": name,
            "to_name": to_name,
            "type": kind,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": value,
        }
        if ann.confidence is not None:
            result["score"] = ann.confidence
        if ann.status == "proposed":
            result["meta"] = {"text": ["proposed"]}
        results.append(result)
    return results


def label_config(
    labels: Sequence[str],
    *,
    from_name: str = "label",
    to_name: str = "image",
    polygons: bool,
    tags: bool = False,
) -> str:
    """A Label Studio labeling config for `results_for`'s results: an `<Image>` reading
    `$image`, `<RectangleLabels>` and, when asked, `<PolygonLabels>` and `<Choices>`."""
    if not labels:
        raise ExportNotPossible(
            "A Label Studio labeling config needs at least one label; the selection has none."
        )
    options = "".join(f"\n    <Label value={quoteattr(label)}/>" for label in labels)
    to = quoteattr(to_name)
    parts = [
        f"<View>\n  <Image name={to} value={quoteattr('$' + IMAGE_KEY)}/>",
        f"  <RectangleLabels name={quoteattr(from_name)} toName={to}>{options}\n"
        f"  </RectangleLabels>",
    ]
    if polygons:
        parts.append(
            f"  <PolygonLabels name={quoteattr(polygon_control(from_name))} toName={to}>"
            f"{options}\n  </PolygonLabels>"
        )
    if tags:
        choices = "".join(f"\n    <Choice value={quoteattr(label)}/>" for label in labels)
        parts.append(
            f"  <Choices name={quoteattr(tags_control(from_name))} toName={to} "
            f'choice="multiple">{choices}\n  </Choices>'
        )
    parts.append("</View>\n")
    return "\n".join(parts)


class LabelStudioWriter:
    """`tasks.json` (a list of tasks) and the `label_config.xml` they fit; media under
    `images/`. `image_url` gives each task's `data.image` (default: the media's path relative
    to `tasks.json`)."""

    needs_media = False

    def __init__(
        self,
        sink: ExportSink,
        options: ExportOptions,
        *,
        image_url: Callable[[ExportImage], str] | None = None,
        from_name: str = "label",
        to_name: str = "image",
    ) -> None:
        self.sink = sink
        self.options = options
        self.image_url = image_url or _relative_url
        self.from_name = from_name
        self.to_name = to_name
        self.tasks: list[str] = []
        self.has_polygons = False
        self.has_tags = False

    def add(self, image: ExportImage, media: bytes | None) -> None:
        require_image(image, "label_studio")
        if self.options.include_media:
            write_media(self.sink, MEDIA_FOLDER, image, media)
        regions = [a for a in image.annotations if a.shape in ("box", "polygon", "tag")]
        width, height = image_size(image, media) if regions else (0, 0)
        human = [a for a in regions if a.source != "machine"]
        machine: dict[int | None, list[ExportAnnotation]] = {}
        for ann in regions:
            if ann.source == "machine":
                machine.setdefault(ann.model_version_id, []).append(ann)
        self.has_polygons |= any(a.shape == "polygon" for a in regions)
        self.has_tags |= any(a.shape == "tag" for a in regions)

        def results(annotations: list[ExportAnnotation]) -> list[dict[str, Any]]:
            return results_for(
                annotations,
                width=width,
                height=height,
                from_name=self.from_name,
                to_name=self.to_name,
                tags=True,
            )

        task: dict[str, Any] = {
            "data": {IMAGE_KEY: self.image_url(image), PATH_KEY: image.path},
            "meta": {"unique_name": image.unique_name, "file_id": image.file_id},
        }
        if image.split is not None:
            task["data"]["split"] = image.split
        task["annotations"] = [{"result": results(human)}] if human else []
        task["predictions"] = [
            _prediction(version, annotations, results(annotations))
            for version, annotations in machine.items()
        ]
        self.tasks.append(compact(task))

    def finish(self) -> None:
        self.sink.write(TASKS_FILE, (json_list(self.tasks) + "\n").encode())
        if self.options.labels:
            config = label_config(
                self.options.labels,
                from_name=self.from_name,
                to_name=self.to_name,
                polygons=self.has_polygons,
                tags=self.has_tags,
            )
            self.sink.write(CONFIG_FILE, config.encode())


def _relative_url(image: ExportImage) -> str:
    return f"{MEDIA_FOLDER}/{image.path}"


def _prediction(
    version: int | None, annotations: list[ExportAnnotation], results: list[dict[str, Any]]
) -> dict[str, Any]:
    scores = [a.confidence for a in annotations if a.confidence is not None]
    prediction: dict[str, Any] = {
        "model_version": f"metalake-{version}" if version is not None else "metalake-external",
        "result": results,
    }
    if scores:
        prediction["score"] = sum(scores) / len(scores)
    return prediction
