"""Wire models of one-image prediction and signed file URLs (docs/predict.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sdk.schemas import JsonObject

PredictShape = Literal["box", "polygon"]


class Detection(BaseModel):
    """One object a model found, in pixels of the original image (docs/annotations.md):
    `geometry` is `{"x1", "y1", "x2", "y2"}` for a box, `{"points": [[x, y], ...]}` for a
    polygon; `box` is the enclosing box either way."""

    model_config = ConfigDict(frozen=True)

    label: str
    shape: PredictShape
    geometry: JsonObject
    box: tuple[float, float, float, float]
    confidence: float = Field(ge=0, le=1)


class Prediction(BaseModel):
    """The answer of `POST /models/{name}/predict`: the image's detections and its size."""

    model: str
    model_version: int
    width: int
    height: int
    detections: list[Detection]


class SignedUrl(BaseModel):
    """A URL fetching a file's bytes without an API key until `expires_at`."""

    url: str
    expires_at: datetime
