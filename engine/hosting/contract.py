"""The engine's side of the wire contract with a model bundle: the batched request it sends
(`encode_batch`, `application/x-npz`) and the outputs it accepts back (`validate_outputs`).

The model host decodes the request (`engine.hosting.serve.decode_batch`). docs/bundles.md
describes both formats and every output field.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import numpy as np
from pydantic import BaseModel, ConfigDict

from engine.hosting import serve
from sdk.vocabulary import APPLICATION_SPELLINGS, Application

NPZ_CONTENT_TYPE = serve.NPZ_CONTENT_TYPE

TAG_ROW = "[x1, y1, x2, y2, conf, cls]"
BOX_ROW = "[x1, y1, x2, y2]"


def normalize_application(name: str) -> Application:
    try:
        return APPLICATION_SPELLINGS[name]
    except KeyError:
        raise ValueError(
            f"unknown application {name!r}; expected one of {sorted(APPLICATION_SPELLINGS)}"
        ) from None


# -- request ---------------------------------------------------------------------------------
def encode_batch(images: Sequence[np.ndarray], parameters: dict[str, Any]) -> bytes:
    """The `application/x-npz` body for a batch of same-sized uint8 RGB images."""
    if not images:
        raise ValueError("a batch needs at least one image")
    first = images[0].shape
    for index, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"image {index} is {image.dtype} {image.shape}; expected uint8 (H, W, 3) RGB"
            )
        if image.shape != first:
            raise ValueError(
                f"image {index} is {image.shape[1]}x{image.shape[0]} but image 0 is "
                f"{first[1]}x{first[0]}; resize every image of a batch to input_resolution"
            )
    buffer = io.BytesIO()
    np.savez(buffer, images=np.stack(images), parameters=np.array(json.dumps(parameters)))
    return buffer.getvalue()


# -- typed outputs ---------------------------------------------------------------------------
Point: TypeAlias = tuple[float, float]
Polygon: TypeAlias = list[Point]


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Detection(_Output):
    """One row of an autotagging `boxes` list, in the pixel space of the image sent."""

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    class_id: int


class TagPrediction(_Output):
    """The output of an autotagging bundle for one image."""

    boxes: list[Detection]
    masks: list[Polygon | None] | None = None
    probs: list[float] | None = None


class EmbeddingOutput(_Output):
    """The output of an embedding bundle for one image."""

    embedding: list[float]

    @property
    def dimension(self) -> int:
        return len(self.embedding)


class AnnotationOutput(_Output):
    """The output of an auto_annotation bundle for one image: parallel lists, one entry per
    detected object."""

    boxes: list[tuple[float, float, float, float]]
    masks: list[Polygon | None] | None = None
    logits: list[float]
    phrases: list[str]


ModelOutput: TypeAlias = TagPrediction | EmbeddingOutput | AnnotationOutput


@dataclass(frozen=True)
class ItemOutcome:
    """The validated output for the image at `index` of the batch, or why it was refused."""

    index: int
    output: ModelOutput | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Malformed(Exception):
    """One output breaks the contract; the message names the key."""


# -- validation ------------------------------------------------------------------------------
def validate_outputs(
    application: str,
    raw: bytes | str | list[Any] | dict[str, Any],
    batch_size: int,
    *,
    embedding_dim: int | None = None,
    num_classes: int | None = None,
) -> list[ItemOutcome]:
    """Check what a bundle returned for a batch of `batch_size` images, item by item.

    `raw` is the response body (a JSON list, one output per image) or the parsed value; a
    JSON string of the list, or a list of JSON strings, is accepted too, as is a single object
    for a batch of one. A response that cannot be matched to the images fails every item.
    """
    app = normalize_application(application)
    try:
        items = _as_items(raw, batch_size)
    except _Malformed as exc:
        return [ItemOutcome(index, error=str(exc)) for index in range(batch_size)]
    outcomes: list[ItemOutcome] = []
    for index, item in enumerate(items):
        try:
            output = _parse_item(app, item, num_classes)
        except _Malformed as exc:
            outcomes.append(ItemOutcome(index, error=f"item {index}: {exc}"))
        else:
            outcomes.append(ItemOutcome(index, output=output))
    if app == Application.EMBEDDING:
        outcomes = _check_dimensions(outcomes, embedding_dim)
    return outcomes


def _as_items(raw: object, batch_size: int) -> list[Any]:
    value = raw
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed(
                f"the response is not UTF-8 JSON ({exc}); output_fn must return "
                "JSON for Accept: application/json"
            ) from exc
    for _ in range(2):  # the body, then once more for a JSON string holding the JSON list
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _Malformed(f"the response is not JSON ({exc}): {value[:80]!r}") from exc
    if isinstance(value, dict) and batch_size == 1:
        value = [value]
    if not isinstance(value, list):
        raise _Malformed(
            f"the response is a JSON {_kind(value)}; output_fn must return a list "
            "with one output per image of the batch"
        )
    if len(value) != batch_size:
        raise _Malformed(
            f"the model returned {len(value)} outputs for a batch of {batch_size} "
            "images; output_fn must return one output per image, in order"
        )
    return value


def _parse_item(app: Application, item: Any, num_classes: int | None) -> ModelOutput:
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except json.JSONDecodeError as exc:
            raise _Malformed(f"the output is a string that is not JSON ({exc})") from exc
    if not isinstance(item, dict):
        raise _Malformed(f"expected a JSON object, got a JSON {_kind(item)}")
    if app == Application.AUTOTAGGING:
        return _parse_tags(item, num_classes)
    if app == Application.EMBEDDING:
        return EmbeddingOutput(
            embedding=_numbers(
                _require(item, "embedding", "[float, ...]"), "'embedding'", non_empty=True
            )
        )
    return _parse_annotation(item)


def _parse_tags(item: dict[str, Any], num_classes: int | None) -> TagPrediction:
    rows = _list(_require(item, "boxes", f"a list of {TAG_ROW} rows"), "'boxes'", TAG_ROW)
    detections = []
    for j, row in enumerate(rows):
        x1, y1, x2, y2, conf, cls = _row(row, f"'boxes'[{j}]", 6, TAG_ROW)
        if not 0 <= conf <= 1:
            raise _Malformed(f"'boxes'[{j}] has confidence {conf} (5th number); expected 0..1")
        if cls != int(cls) or cls < 0:
            raise _Malformed(
                f"'boxes'[{j}] has class {cls} (6th number); expected a class "
                "index 0, 1, 2, ... into label_list.yaml"
            )
        if num_classes is not None and cls >= num_classes:
            raise _Malformed(
                f"'boxes'[{j}] has class {int(cls)} but label_list.yaml has "
                f"{num_classes} labels (0..{num_classes - 1})"
            )
        detections.append(Detection(x1=x1, y1=y1, x2=x2, y2=y2, confidence=conf, class_id=int(cls)))
    masks = _masks(item.get("masks"), len(rows))
    probs = item.get("probs")
    return TagPrediction(
        boxes=detections, masks=masks, probs=None if probs is None else _numbers(probs, "'probs'")
    )


def _parse_annotation(item: dict[str, Any]) -> AnnotationOutput:
    rows = _list(_require(item, "boxes", f"a list of {BOX_ROW} rows"), "'boxes'", BOX_ROW)
    boxes = [_row(row, f"'boxes'[{j}]", 4, BOX_ROW) for j, row in enumerate(rows)]
    logits = _numbers(_require(item, "logits", "one float per box"), "'logits'")
    phrases = _list(_require(item, "phrases", "one string per box"), "'phrases'", "str")
    for j, phrase in enumerate(phrases):
        if not isinstance(phrase, str):
            raise _Malformed(f"'phrases'[{j}] is a {_kind(phrase)}; expected a string")
    for key, values in (("logits", logits), ("phrases", phrases)):
        if len(values) != len(boxes):
            raise _Malformed(
                f"'{key}' has {len(values)} entries but 'boxes' has {len(boxes)}; "
                "expected one per box"
            )
    return AnnotationOutput(
        boxes=[(b[0], b[1], b[2], b[3]) for b in boxes],
        masks=_masks(item.get("masks"), len(boxes)),
        logits=logits,
        phrases=phrases,
    )


def _masks(value: Any, box_count: int) -> list[Polygon | None] | None:
    if value is None:
        return None
    masks = _list(value, "'masks'", "polygon [[x, y], ...]")
    if len(masks) != box_count:
        raise _Malformed(
            f"'masks' has {len(masks)} entries but 'boxes' has {box_count}; "
            "expected null or one polygon [[x, y], ...] per box"
        )
    polygons: list[Polygon | None] = []
    for j, polygon in enumerate(masks):
        if polygon is None:
            polygons.append(None)
            continue
        where = f"'masks'[{j}]"
        points = _list(polygon, where, "polygon [[x, y], ...]")  # [] or short: no usable mask
        pairs = [_row(p, f"{where}[{k}]", 2, "[x, y]") for k, p in enumerate(points)]
        polygons.append([(x, y) for x, y in pairs])
    return polygons


def _check_dimensions(outcomes: list[ItemOutcome], declared: int | None) -> list[ItemOutcome]:
    dims = [cast(EmbeddingOutput, o.output).dimension for o in outcomes if o.ok]
    if not dims:
        return outcomes
    expected = declared if declared is not None else Counter(dims).most_common(1)[0][0]
    source = "the model version declares" if declared is not None else "the other items have"
    checked = []
    for outcome in outcomes:
        dim = cast(EmbeddingOutput, outcome.output).dimension if outcome.ok else expected
        if dim != expected:
            outcome = ItemOutcome(
                outcome.index,
                error=(f"item {outcome.index}: 'embedding' has {dim} numbers; {source} {expected}"),
            )
        checked.append(outcome)
    return checked


# -- small checks with messages --------------------------------------------------------------
def _require(item: dict[str, Any], key: str, expected: str) -> Any:
    if key not in item:
        present = ", ".join(repr(k) for k in item) or "none"
        raise _Malformed(f"'{key}' is missing (expected {expected}); keys present: {present}")
    return item[key]


def _list(value: Any, where: str, element: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(f"{where} is a {_kind(value)}; expected a list of {element}")
    return value


def _row(value: Any, where: str, size: int, shape: str) -> list[float]:
    if not isinstance(value, list):
        raise _Malformed(f"{where} is a {_kind(value)}; expected {shape}")
    if len(value) != size:
        raise _Malformed(f"{where} has {len(value)} numbers; expected {shape}")
    numbers = _numbers(value, where)
    if size == 4 or size == 6:
        x1, y1, x2, y2 = numbers[:4]
        if x2 < x1 or y2 < y1:
            raise _Malformed(
                f"{where} has x2 < x1 or y2 < y1; expected corners {shape} (not [x, y, w, h])"
            )
    return numbers


def _numbers(value: Any, where: str, *, non_empty: bool = False) -> list[float]:
    values = _list(value, where, "numbers")
    if non_empty and not values:
        raise _Malformed(f"{where} is empty")
    numbers = []
    for k, number in enumerate(values):
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _Malformed(f"{where}[{k}] is a {_kind(number)}; expected a number")
        if not math.isfinite(number):
            raise _Malformed(f"{where}[{k}] is {number}; expected a finite number")
        numbers.append(float(number))
    return numbers


def _kind(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )
