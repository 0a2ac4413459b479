"""Label Studio: the ML backend under /ml, and annotation projects made from collections and brought back."""

from __future__ import annotations

from fastapi import APIRouter

from engine.api.routing import JSONRoute

router = APIRouter(tags=["labelstudio"], route_class=JSONRoute)
