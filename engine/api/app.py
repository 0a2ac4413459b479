"""The API application factory. Settings come in; nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from engine import __version__
from engine.api import gate, job_wait
from engine.api.connections import Connections
from engine.api.errors import install_error_handlers
from engine.api.fast_search import FastSearch
from engine.api.routes import annotations as annotation_routes
from engine.api.routes import (
    collections,
    embeddings,
    exports,
    health,
    items,
    jobs,
    keys,
    labels,
    labelstudio,
    models,
    predict,
)
from engine.config import Settings
from engine.db.session import make_engine, make_session_factory
from engine.errors import InvalidInput
from engine.storage import Storage
from engine.ui import routes as ui_routes
from engine.ui.pages import PREFIX as UI_PREFIX
from engine.ui.pages import Pages

API_PREFIX = "/api/v1"


def create_app(settings: Settings) -> FastAPI:
    if not settings.database_url:
        raise InvalidInput("The API needs DATABASE_URL (or start everything with `metalake up`).")
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    db_engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.status_connections.close_idle()
        await app.state.key_connections.close_idle()
        db_engine.dispose()

    app = FastAPI(
        title="MetaLake Engine",
        version=__version__,
        description="Model analysis over a metadata lake of images and videos.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db_engine = db_engine
    app.state.session_factory = make_session_factory(db_engine)
    app.state.storage = Storage.from_settings(settings)
    app.state.status_connections = job_wait.status_connections(settings.database_url)
    install_error_handlers(app)
    # The common search, answered before routing (engine/api/fast_search.py).
    app.add_middleware(
        FastSearch, database_url=settings.database_url, path=API_PREFIX + embeddings.SIMILAR_PATH
    )
    # Outermost (added last): no body is read before the key is checked and its size bounded
    # (engine/api/gate.py); it hands the caller on to the fast search and the routes.
    app.state.key_connections = Connections(
        settings.database_url, gate.POOL_SIZE, gate.APPLICATION_NAME
    )
    app.add_middleware(
        gate.Gate,
        connections=app.state.key_connections,
        open_paths=_open_paths(app),
        limits=gate.api_limits(settings, API_PREFIX),
        # the signed URL is the credential; the gallery checks its own session (engine/ui/)
        open_prefixes=[API_PREFIX + predict.SIGNED_PREFIX, UI_PREFIX + "/"],
    )
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(keys.router, prefix=API_PREFIX)
    app.include_router(collections.router, prefix=API_PREFIX)
    app.include_router(items.router, prefix=API_PREFIX)
    app.include_router(annotation_routes.router, prefix=API_PREFIX)
    app.include_router(models.router, prefix=API_PREFIX)
    app.include_router(jobs.router, prefix=API_PREFIX)
    app.include_router(embeddings.router, prefix=API_PREFIX)
    app.include_router(exports.router, prefix=API_PREFIX)
    app.include_router(predict.router, prefix=API_PREFIX)
    app.include_router(labels.router, prefix=API_PREFIX)
    app.include_router(labelstudio.router)  # its own prefixes: /ml for Label Studio, /api/v1
    app.state.ui_pages = Pages()
    app.include_router(ui_routes.router)  # the gallery at /ui/
    return app


def _open_paths(app: FastAPI) -> list[str]:
    """What answers without a key: the health check, the OpenAPI documents, and /ui (which
    redirects to the gallery, /ui/)."""
    documents = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    return [API_PREFIX + "/health", UI_PREFIX, *(path for path in documents if path)]


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory engine.api.app:app_from_env`."""
    return create_app(Settings())
