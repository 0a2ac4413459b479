"""Model bundles unpacked on a worker: fetched from the registry's storage and extracted (with
the registry's safe extractor) once per sha256 into the bundle cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from engine.config import Settings
from engine.errors import ModelLoadFailed
from engine.hosting.reference import ModelVersionRef
from engine.registry.archive import Limits, bundle_root, extract_bundle
from engine.storage import Storage


class BundleCache:
    def __init__(self, *, root: Path, storage: Storage, limits: Limits) -> None:
        self._root = root
        self._storage = storage
        self._limits = limits

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage) -> BundleCache:
        return cls(
            root=settings.bundle_cache_path,
            storage=storage,
            limits=Limits(max_bytes=settings.bundle_max_bytes, max_files=settings.bundle_max_files),
        )

    def path_for(self, version: ModelVersionRef) -> Path:
        """The unpacked bundle of `version` (fetched and extracted on first use)."""
        target = self._root / version.sha256
        if target.is_dir():  # complete: it appears by one atomic rename
            return bundle_root(target)
        self._root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version.sha256[:12]}-", dir=self._root))
        try:
            archive = staging / "bundle.tar.gz"
            digest = hashlib.sha256()
            with self._storage.open(version.bundle_uri) as source, archive.open("wb") as out:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != version.sha256:
                raise ModelLoadFailed(
                    f"the stored bundle of {version.key} does not match its sha256 "
                    f"({digest.hexdigest()[:12]} != {version.sha256[:12]}); register it again",
                    version_key=version.key,
                )
            extract_bundle(archive, staging / "bundle", self._limits)
            archive.unlink()
            try:
                os.rename(staging / "bundle", target)
            except OSError:  # another worker process got there first
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return bundle_root(target)
