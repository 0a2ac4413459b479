"""The interface every inference platform implements.

A chunk encodes its images once (`engine.hosting.contract.encode_batch`, content type
`application/x-npz`) and hands the same bytes to whichever platform the job runs on, so
`local` and `aws` differ only in where the endpoint lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


class InferencePlatform(Protocol):
    name: str

    @property
    def warning(self) -> str | None:
        """What every job run here must tell its user (e.g. model code not sandboxed)."""
        ...

    def invoke(self, version: ModelVersionRef, body: bytes, content_type: str,
               accept: str = "application/json") -> bytes:
        """Send one batched request; return the response body. Raises `ModelHostError`
        (or a subclass) with the reason when the model cannot answer."""
        ...

    def close(self) -> None:
        """Release hosts / clients (worker shutdown)."""
        ...
