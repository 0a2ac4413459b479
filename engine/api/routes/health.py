from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from engine import __version__
from engine.api.deps import SessionDep
from engine.api.routing import JSONRoute
from engine.api.schemas import Health

router = APIRouter(tags=["health"], route_class=JSONRoute)


@router.get("/health", response_model=Health)
def health(session: SessionDep) -> Health:
    """Liveness and database reachability; no key needed."""
    session.execute(text("SELECT 1"))
    return Health(status="ok", version=__version__, database="ok")
