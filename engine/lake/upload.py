"""Uploads into managed storage: the bytes come with the request and are copied, content-addressed,
into `METALAKE_MANAGED_STORAGE_URL` (`Storage.put_content_addressed`), then registered like an
in-place ingest. Used when the SDK runs on another machine than the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NoManagedStorage
from engine.lake.collections import ensure_collection
from engine.lake.ingest import Candidate, clean_relative_path, probe_all
from engine.lake.probe import Kind, probe_stream
from engine.lake.register import Probed, register
from engine.storage import Storage
from sdk.schemas import IngestReport

if TYPE_CHECKING:
    from engine.config import Settings

UPLOAD_THREADS = 8
NAMESPACE = "files"


@dataclass(frozen=True)
class Upload:
    relative_path: str
    stream: IO[bytes]


def ingest_uploads(
    *,
    session: Session,
    settings: Settings,
    storage: Storage,
    collection_name: str,
    content_type: Kind,
    uploads: Sequence[Upload],
    metadata: dict[str, Any],
) -> IngestReport:
    """Copy `uploads` into managed storage and register them in `collection_name`."""
    if not storage.managed_url:
        raise NoManagedStorage()
    if not uploads:
        raise InvalidInput("The upload has no files; send them as multipart `files` fields.")
    candidates = [
        Candidate(
            relative_path=clean_relative_path(u.relative_path),
            source=u.relative_path,
            storage_uri="",
            stream=u.stream,
        )
        for u in uploads
    ]
    collection = ensure_collection(session=session, name=collection_name, content_type=content_type)

    # Identical bytes map to one object; storing them from two threads at once would race on
    # the same key, so each content hash is stored under its own lock.
    guard = threading.Lock()
    locks: dict[str, threading.Lock] = {}

    def probe_and_store(candidate: Candidate) -> Probed:
        assert candidate.stream is not None
        suffix = PurePosixPath(candidate.relative_path).suffix.lower()
        probe = probe_stream(
            candidate.stream,
            content_type,
            suffix=suffix,
            max_pixels=settings.max_image_pixels,
            max_bytes=settings.ingest_max_file_bytes,
        )
        candidate.stream.seek(0)
        with guard:
            lock = locks.setdefault(probe.sha256 + suffix, threading.Lock())
        with lock:
            uri, _, _ = storage.put_content_addressed(
                candidate.stream, namespace=NAMESPACE, suffix=suffix
            )
        return Probed(
            relative_path=candidate.relative_path,
            source=candidate.source,
            storage_uri=uri,
            probe=probe,
        )

    probed, failures = probe_all(candidates, content_type, probe_and_store, threads=UPLOAD_THREADS)
    return register(
        session=session, collection=collection, probed=probed, failures=failures, metadata=metadata
    )
