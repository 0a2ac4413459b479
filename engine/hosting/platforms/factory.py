"""The inference platforms by name: the class a job submission checks, the platform a worker
builds. The platform modules are imported on first use (`aws` needs no boto3 until it runs)."""

from __future__ import annotations

from engine.config import Settings
from engine.errors import UnknownPlatform
from engine.hosting.bundles import BundleCache
from engine.hosting.platforms.base import InferencePlatform, PlatformType
from sdk.vocabulary import Platform


def platform_type(name: str) -> PlatformType:
    """The class of platform `name` (`local` or `aws`). Raises UnknownPlatform."""
    if name == Platform.LOCAL:
        from engine.hosting.platforms.local import LocalPlatform

        return LocalPlatform
    if name == Platform.AWS:
        from engine.hosting.platforms.aws import SageMakerPlatform

        return SageMakerPlatform
    raise UnknownPlatform(f"Unknown inference platform {name!r}.", platform=name)


def platform_named(name: str, settings: Settings, *, bundles: BundleCache) -> InferencePlatform:
    """Platform `name` for a worker process, whose bundle cache is `bundles`."""
    return platform_type(name).from_settings(settings, bundles=bundles)
