"""`local`: the model hosts of this worker process (`engine.hosting.host.HostManager`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.config import Settings
from engine.hosting.bundles import BundleCache
from engine.hosting.host import HostManager
from engine.hosting.reference import ModelVersionRef


class LocalPlatform:
    name = "local"

    def __init__(self, *, hosts: HostManager, bundles: BundleCache) -> None:
        self._hosts = hosts
        self._bundles = bundles

    @classmethod
    def check_settings(cls, settings: Settings) -> None:
        """Nothing to configure: the hosts run on the worker's machine."""

    @classmethod
    def check_request(cls, settings: Settings, width: int, height: int) -> None:
        """Any size fits: a local request has no size limit."""

    @classmethod
    def from_settings(cls, settings: Settings, *, bundles: BundleCache) -> LocalPlatform:
        return cls(hosts=HostManager.from_settings(settings), bundles=bundles)

    @property
    def warning(self) -> str | None:
        return self._hosts.sandbox.warning

    def images_per_request(
        self, width: int, height: int, parameters: Mapping[str, Any], *, at_most: int
    ) -> int:
        return max(1, at_most)

    def invoke(
        self,
        version: ModelVersionRef,
        body: bytes,
        content_type: str,
        accept: str = "application/json",
    ) -> bytes:
        bundle_dir = self._bundles.path_for(version)
        requirements_file = bundle_dir / "code" / "requirements.txt"
        requirements = requirements_file.read_text() if requirements_file.exists() else ""
        return self._hosts.invoke(version.key, bundle_dir, requirements, body, content_type, accept)

    def close(self) -> None:
        self._hosts.close()
