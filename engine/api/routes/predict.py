"""One image, one answer: a model's detections for an uploaded image, a lake item drawn with its labels, and signed file URLs."""

from __future__ import annotations

from fastapi import APIRouter

from engine.api.routing import JSONRoute

router = APIRouter(tags=["predict"], route_class=JSONRoute)
