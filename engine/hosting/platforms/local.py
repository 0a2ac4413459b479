"""`local`: the model host of this worker process (`engine.hosting.host.HostManager`)."""

from __future__ import annotations

from engine.hosting.bundles import BundleCache
from engine.hosting.host import HostManager
from engine.hosting.platforms.base import ModelVersionRef


class LocalPlatform:
    name = "local"

    def __init__(self, *, hosts: HostManager, bundles: BundleCache) -> None:
        self._hosts = hosts
        self._bundles = bundles

    @property
    def warning(self) -> str | None:
        return self._hosts.sandbox.warning

    def invoke(self, version: ModelVersionRef, body: bytes, content_type: str,
               accept: str = "application/json") -> bytes:
        bundle_dir = self._bundles.path_for(version)
        requirements_file = bundle_dir / "code" / "requirements.txt"
        requirements = requirements_file.read_text() if requirements_file.exists() else ""
        return self._hosts.invoke(version.key, bundle_dir, requirements, body, content_type,
                                  accept)

    def close(self) -> None:
        self._hosts.close()
