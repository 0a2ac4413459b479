"""The interface every inference platform implements.

`PlatformType` is a platform class: what a job submission checks with settings alone, and how
a worker builds one. `InferencePlatform` is the built platform a chunk sends its requests to,
for a model version given as a `ModelVersionRef` (engine/hosting/reference.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from engine.hosting.reference import ModelVersionRef

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.hosting.bundles import BundleCache


class InferencePlatform(Protocol):
    name: str

    @property
    def warning(self) -> str | None:
        """What every job run here must tell its user (e.g. model code not sandboxed)."""
        ...

    def images_per_request(
        self, width: int, height: int, parameters: Mapping[str, Any], *, at_most: int
    ) -> int:
        """How many `width` x `height` frames one request with these `parameters` may carry, at
        most `at_most` and at least 1. Raises `EndpointPayloadTooLarge` when not one fits."""
        ...

    def invoke(
        self,
        version: ModelVersionRef,
        body: bytes,
        content_type: str,
        accept: str = "application/json",
    ) -> bytes:
        """Send one batched request; return the response body. Raises `ModelHostError`
        (or a subclass) with the reason when the model cannot answer."""
        ...

    def close(self) -> None:
        """Release hosts / clients (worker shutdown)."""
        ...


class PlatformType(Protocol):
    """A platform class (`engine.hosting.platforms.factory.platform_type`): its checks need
    settings only, so a job is refused when it is submitted rather than in the worker."""

    name: str

    def check_settings(self, settings: Settings) -> None:
        """Raise `PlatformNotConfigured` naming what the engine's settings lack."""
        ...

    def check_request(self, settings: Settings, width: int, height: int) -> None:
        """Raise `InvalidInput` when not one `width` x `height` image fits in a request."""
        ...

    def from_settings(self, settings: Settings, *, bundles: BundleCache) -> InferencePlatform:
        """The platform a worker process uses (`bundles`: its cache of unpacked bundles)."""
        ...
