"""Exports and datasets: selected by collection, query and filter, written in a format, streamed or run as a job."""

from __future__ import annotations

from fastapi import APIRouter

from engine.api.routing import JSONRoute

router = APIRouter(tags=["exports"], route_class=JSONRoute)
