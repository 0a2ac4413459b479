"""What a worker process holds while it runs job tasks: database, storage, bundle cache and the
inference platforms (the `local` one owns this process's model hosts).

Made from `Settings` on the first task in each worker process (after a prefork fork) and closed
when the process shuts down; kept on the Celery app, never in a module global.
"""

from __future__ import annotations

import os

from celery import Celery

from engine.config import Settings
from engine.db.session import make_engine, make_session_factory
from engine.errors import InvalidInput
from engine.hosting.bundles import BundleCache
from engine.hosting.platforms.base import InferencePlatform
from engine.hosting.platforms.factory import platform_named
from engine.lake.probe import allow_pillow_pixels
from engine.registry.store import registry_storage
from engine.storage import Storage


class WorkerContext:
    def __init__(self, settings: Settings) -> None:
        if not settings.database_url:
            raise InvalidInput("The worker needs DATABASE_URL.")
        self.settings = settings
        self.pid = os.getpid()
        allow_pillow_pixels(settings.max_image_pixels)  # decode what ingest accepted
        self.db_engine = make_engine(settings.database_url, pool_size=2)
        self.sessions = make_session_factory(self.db_engine)
        self.storage = Storage.from_settings(settings)
        self.bundles = BundleCache.from_settings(settings, registry_storage(settings))
        self._platforms: dict[str, InferencePlatform] = {}

    def platform(self, name: str) -> InferencePlatform:
        if name not in self._platforms:
            self._platforms[name] = platform_named(name, self.settings, bundles=self.bundles)
        return self._platforms[name]

    def close(self) -> None:
        for platform in self._platforms.values():
            platform.close()
        self._platforms.clear()
        self.db_engine.dispose()


def worker_context(app: Celery) -> WorkerContext:
    """The worker process's context, shared by every task it runs: made on the first task, and
    again in a forked child (whose connections must not be the parent's)."""
    context: WorkerContext | None = getattr(app, "metalake_context", None)
    if context is None or context.pid != os.getpid():
        context = WorkerContext(app.conf.metalake_settings)
        app.metalake_context = context  # type: ignore[attr-defined]
    return context
