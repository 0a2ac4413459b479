"""`ModelVersionRef`: the registered model version a worker serves, as hosting sees it.

Below both the platforms, which send it requests, and the bundle cache, which unpacks its
bundle; it imports nothing of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelVersionRef:
    """What a platform needs to know about the model version it serves."""

    id: int
    name: str
    version: int
    application: str
    bundle_uri: str
    sha256: str
    embedding_dim: int | None = None

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"
