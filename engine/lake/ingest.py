"""Ingest: register files in place, from paths the engine can read or an `s3://bucket/prefix`.

One request is one transaction. Paths are checked first (a bad path refuses the whole request,
nothing is written); then every file is probed in a thread pool (reading, hashing and header
parsing overlap on I/O); then `register` writes all rows with bulk upserts. A file that cannot
be read or parsed is recorded with its reason and the rest of the request goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from sqlalchemy.orm import Session

from engine.errors import (
    EngineError,
    IngestListingTooLarge,
    InvalidInput,
    InvalidPath,
    ServerPathForbidden,
    UnreadableFile,
)
from engine.lake.collections import ensure_collection
from engine.lake.probe import (
    Kind,
    check_size,
    is_ignored,
    probe_local,
    probe_stream,
    skip_reason,
)
from engine.lake.register import Probed, register
from engine.storage import Storage, file_uri, split_s3
from engine.textformats import excerpt
from sdk.schemas import IngestEntry, IngestFailurePublic, IngestReport, IngestRequest

if TYPE_CHECKING:
    from engine.config import Settings

LOCAL_PROBE_THREADS = 8
REMOTE_PROBE_THREADS = 16  # S3 reads are latency-bound; boto3's pool holds 32 connections
_SHOW_BAD_PATHS = 5


@dataclass(frozen=True)
class Candidate:
    """A file to probe: its path relative to the upload root, and where it is."""

    relative_path: str
    source: str  # the path or URI the user gave, shown in failures
    storage_uri: str  # empty for an upload: known once stored
    local: Path | None = None  # on the engine's disk, else read through Storage
    stream: IO[bytes] | None = None  # an uploaded file's bytes
    size: int | None = None  # when listed (S3): a file over the cap is refused unread


def clean_relative_path(relative_path: str) -> str:
    """A relative POSIX path with no `..`, `.` or empty parts (`\\` taken as a separator)."""
    parts = [p for p in relative_path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or relative_path.startswith("/"):
        raise InvalidPath(
            f"The relative path {relative_path!r} must be a path inside the upload folder, "
            "like 'sub/img1.jpg' (no leading /, no '..').",
            relative_path=relative_path,
        )
    return "/".join(parts)


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return not roots or any(path == root or path.is_relative_to(root) for root in roots)


def _forbidden(paths: list[str], roots: Sequence[Path]) -> ServerPathForbidden:
    where = (
        f"this engine's are {os.pathsep.join(map(str, roots))}"
        if roots
        else "this engine sets none"
    )
    shown = ", ".join(repr(p) for p in paths[:_SHOW_BAD_PATHS])
    more = len(paths) - _SHOW_BAD_PATHS
    return ServerPathForbidden(
        f"Registering files in place from the engine's own disk needs an admin key, or paths "
        f"under METALAKE_INGEST_ROOTS for a write key ({where}); {shown}"
        + (f" and {more} more" if more > 0 else "")
        + (" are" if len(paths) > 1 else " is")
        + " outside them. Use an admin key, have the "
        "engine's operator add the folder to METALAKE_INGEST_ROOTS, or upload copies (an engine "
        "with METALAKE_MANAGED_STORAGE_URL).",
        paths=paths[:100],
        count=len(paths),
        required_scope="admin",
    )


def local_candidates(
    entries: Sequence[IngestEntry], roots: Sequence[Path], *, admin: bool
) -> list[Candidate]:
    """Check every entry's path; any bad one refuses the request with the fix in the message.

    Paths are resolved (symlinks, `..`) before they are compared with `roots`. A write key may
    register only paths under `roots`; an admin key any path, or only those under `roots` when
    there are roots. Nothing about a path the key may not register (whether it exists, what it
    is) is told.
    """
    problems: list[str] = []
    forbidden: list[str] = []
    candidates: list[Candidate] = []
    for entry in entries:
        given = Path(entry.path)
        if "\x00" in entry.path:
            problems.append(
                f"{entry.path!r} contains a NUL character, which no file path "
                "holds; send the path as the file system spells it"
            )
            continue
        if not given.is_absolute():
            problems.append(f"{entry.path!r} is relative; send the absolute path")
            continue
        resolved = given.resolve()
        inside = bool(roots) and _within(resolved, roots)
        if not inside and not admin:
            forbidden.append(entry.path)
            continue
        if not inside and roots:
            problems.append(
                f"{entry.path!r} is outside the folders this engine may ingest "
                f"from ({os.pathsep.join(map(str, roots))}); move the files there "
                "or add the folder to METALAKE_INGEST_ROOTS"
            )
            continue
        try:
            exists, regular = resolved.exists(), resolved.is_file()
        except OSError as exc:  # a name too long for the file system, a loop of links, ...
            problems.append(
                f"{excerpt(entry.path)!r} cannot be looked up on the engine's "
                f"machine ({exc.strerror or type(exc).__name__})"
            )
            continue
        if not exists:
            problems.append(
                f"{entry.path!r} does not exist on the engine's machine; the "
                "engine registers files in place, so it must be able to read them "
                "(or configure METALAKE_MANAGED_STORAGE_URL to upload copies)"
            )
            continue
        if not regular:
            problems.append(f"{entry.path!r} is not a regular file; send the files inside it")
            continue
        candidates.append(
            Candidate(
                relative_path=clean_relative_path(entry.relative_path),
                source=entry.path,
                storage_uri=file_uri(resolved),
                local=resolved,
            )
        )
    if forbidden:
        raise _forbidden(forbidden, roots)
    if problems:
        more = len(problems) - _SHOW_BAD_PATHS
        raise InvalidPath(
            "Cannot ingest: "
            + "; ".join(problems[:_SHOW_BAD_PATHS])
            + (f"; and {more} more" if more > 0 else "")
            + ".",
            problems=problems[:100],
            count=len(problems),
        )
    return candidates


def s3_listing(storage: Storage, uri: str) -> Iterator[tuple[bool, Candidate]]:
    """(is in the folder `prefix/`, candidate) for each object under `s3://bucket/prefix`, as
    it is listed; folder markers and hidden or OS files (skipped as in a folder) left out."""
    bucket, prefix = split_s3(uri)
    prefix = prefix.strip("/")
    folder = f"{prefix}/" if prefix else ""
    for obj in storage.list_s3(f"s3://{bucket}/{prefix}"):
        if obj.key.endswith("/") or is_ignored(obj.key[len(folder) :]):
            continue
        if obj.key.startswith(folder):
            yield (
                True,
                Candidate(
                    relative_path=obj.key[len(folder) :],
                    source=obj.uri,
                    storage_uri=obj.uri,
                    local=None,
                    size=obj.size,
                ),
            )
        elif obj.key == prefix:
            yield (
                False,
                Candidate(
                    relative_path=PurePosixPath(obj.key).name,
                    source=obj.uri,
                    storage_uri=obj.uri,
                    local=None,
                    size=obj.size,
                ),
            )


def s3_candidates(storage: Storage, uri: str, *, max_listing: int) -> list[Candidate]:
    """The objects under `s3://bucket/prefix` (a folder), or the one object at that key; a
    prefix of more than `max_listing` objects is refused (`IngestListingTooLarge`, which the
    route turns into a background job) before any is read."""
    members: list[Candidate] = []
    single: list[Candidate] = []
    for member, candidate in s3_listing(storage, uri):
        (members if member else single).append(candidate)
        if len(members) > max_listing:
            raise IngestListingTooLarge(
                f"{uri} holds more than {max_listing} objects, the most one ingest request "
                "lists (METALAKE_INGEST_MAX_LISTING); ingest its sub-prefixes one by one, or "
                "raise that limit on the engine.",
                uri=uri,
                limit=max_listing,
            )
    found = members or single
    if not found:
        raise InvalidPath(
            f"Nothing to ingest at {uri}: no object has that key or prefix. Check the bucket "
            "and prefix (`aws s3 ls`).",
            uri=uri,
        )
    return found


def _probe_in_place(
    candidate: Candidate, kind: Kind, storage: Storage, *, max_pixels: int, max_bytes: int
) -> Probed:
    if candidate.local is not None:
        probe = probe_local(candidate.local, kind, max_pixels=max_pixels, max_bytes=max_bytes)
    else:
        if candidate.size is not None:
            check_size(candidate.size, max_bytes)  # refused before it is opened
        with storage.open(candidate.storage_uri) as stream:
            probe = probe_stream(
                stream,
                kind,
                max_pixels=max_pixels,
                max_bytes=max_bytes,
                suffix=PurePosixPath(candidate.relative_path).suffix,
                size=candidate.size,
            )
    return Probed(
        relative_path=candidate.relative_path,
        source=candidate.source,
        storage_uri=candidate.storage_uri,
        probe=probe,
    )


def probe_all(
    candidates: Iterable[Candidate],
    kind: Kind,
    probe: Callable[[Candidate], Probed],
    *,
    threads: int,
) -> tuple[list[Probed], list[IngestFailurePublic]]:
    """Probe in a thread pool; files that do not fit or cannot be read become failures."""
    failures: list[IngestFailurePublic] = []
    todo: list[Candidate] = []
    for candidate in candidates:
        reason = skip_reason(candidate.relative_path, kind)
        if reason:
            failures.append(IngestFailurePublic(path=candidate.source, reason=reason))
        else:
            todo.append(candidate)

    def one(candidate: Candidate) -> Probed | IngestFailurePublic:
        try:
            return probe(candidate)
        except UnreadableFile as exc:
            return IngestFailurePublic(path=candidate.source, reason=exc.reason)
        except EngineError as exc:  # the storage could not serve or keep this object
            return IngestFailurePublic(path=candidate.source, reason=exc.message)

    probed: list[Probed] = []
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(todo)))) as pool:
        for outcome in pool.map(one, todo):
            if isinstance(outcome, Probed):
                probed.append(outcome)
            else:
                failures.append(outcome)
    return probed, failures


def ingest(
    request: IngestRequest, *, session: Session, settings: Settings, storage: Storage, admin: bool
) -> IngestReport:
    """Register `request.entries` (local paths) or everything under `request.s3_uri`.

    `admin`: the caller's key has the admin scope, so it may register local paths outside
    METALAKE_INGEST_ROOTS (when that is empty)."""
    if bool(request.entries) == bool(request.s3_uri):
        raise InvalidInput(
            "Send either `entries` (absolute paths the engine can read) or `s3_uri` "
            "(s3://bucket/prefix), not both and not neither."
        )
    if request.s3_uri:
        candidates = s3_candidates(storage, request.s3_uri, max_listing=settings.ingest_max_listing)
        threads = REMOTE_PROBE_THREADS
    else:
        candidates = local_candidates(request.entries, settings.ingest_root_paths, admin=admin)
        threads = LOCAL_PROBE_THREADS
    return ingest_candidates(
        candidates, request, session=session, settings=settings, storage=storage, threads=threads
    )


def ingest_candidates(
    candidates: Sequence[Candidate],
    request: IngestRequest,
    *,
    session: Session,
    settings: Settings,
    storage: Storage,
    threads: int,
) -> IngestReport:
    """Probe `candidates` and register them in `request`'s collection, in `session`."""
    collection = ensure_collection(
        session=session, name=request.collection_name, content_type=request.content_type
    )
    kind: Kind = request.content_type

    def probe(candidate: Candidate) -> Probed:
        return _probe_in_place(
            candidate,
            kind,
            storage,
            max_pixels=settings.max_image_pixels,
            max_bytes=settings.ingest_max_file_bytes,
        )

    probed, failures = probe_all(candidates, kind, probe, threads=threads)
    return register(
        session=session,
        collection=collection,
        probed=probed,
        failures=failures,
        metadata=request.metadata,
    )
