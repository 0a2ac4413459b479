"""A file's bytes as the lake registered them, or a refusal: the content route's reads.

A local file is opened by its stored real path following no symlink, and its size and SHA-256
are checked on the open descriptor before the first byte is sent (409 otherwise); the
descriptor is then rewound and streamed, so a path swapped after the check changes nothing
sent. Bytes rewritten in place while sending are hashed again on the way, the last chunk held
back until the hash is known, so such a response ends short of its Content-Length. An S3 object
is checked on the way only (reading it twice would double the transfer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlparse

from engine.errors import FileChangedSinceIngest, NotFound, StorageError
from engine.lake.localfile import NotRegularFile, SymlinkInPath, open_no_follow
from engine.storage import Storage, local_path

CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    """A lake file's location and the facts ingest recorded about its bytes."""

    file_id: int
    storage_uri: str
    sha256: str
    size_bytes: int
    media_type: str
    name: str


def _changed(file: StoredFile, what: str) -> FileChangedSinceIngest:
    return FileChangedSinceIngest(
        f"File {file.file_id} ({file.name!r}) changed since ingest: {what}. Re-ingest it "
        "(upload_files_to_collection with its folder again) to register its current bytes.",
        file_id=file.file_id,
    )


def _open_local(file: StoredFile) -> IO[bytes]:
    try:
        handle = open_no_follow(local_path(file.storage_uri))
    except FileNotFoundError as exc:
        raise NotFound(
            f"File {file.file_id} ({file.name!r}) is gone from storage: it was "
            "moved or deleted since ingest.",
            file_id=file.file_id,
        ) from exc
    except SymlinkInPath as exc:
        raise _changed(file, "its path now goes through a symlink") from exc
    except NotRegularFile as exc:
        raise _changed(file, "its path no longer names a regular file") from exc
    except OSError as exc:
        raise StorageError(
            f"Cannot read file {file.file_id}: {exc.strerror or exc}", file_id=file.file_id
        ) from exc
    try:
        _verify(handle, file)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def _verify(handle: IO[bytes], file: StoredFile) -> None:
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        size += len(chunk)
        if size > file.size_bytes:
            break
        digest.update(chunk)
    if size != file.size_bytes:
        raise _changed(file, f"its size is no longer the {file.size_bytes} bytes ingested")
    if digest.hexdigest() != file.sha256:
        raise _changed(file, "its SHA-256 is no longer the one ingested")


def _checked(handle: IO[bytes], file: StoredFile) -> Iterator[bytes]:
    """The bytes of `handle`, hashed on the way. The last chunk is held back until the hash is
    known: bytes that are not the ingested ones end in an exception instead, so the response is
    cut short of its Content-Length and no client takes it for the file."""
    digest = hashlib.sha256()
    size = 0
    held: bytes | None = None
    with handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            size += len(chunk)
            if size > file.size_bytes:
                raise _changed(file, "it grew while being sent")
            digest.update(chunk)
            if held is not None:
                yield held
            held = chunk
    if size != file.size_bytes or digest.hexdigest() != file.sha256:
        raise _changed(file, "its bytes changed while being sent")
    if held is not None:
        yield held


def open_content(file: StoredFile, *, storage: Storage) -> Iterator[bytes]:
    """The file's bytes in chunks, only if they are those ingested (else `FileChangedSinceIngest`
    before the first chunk for a local file; the stream ends in that error for an S3 object)."""
    if urlparse(file.storage_uri).scheme == "file":
        return _checked(_open_local(file), file)
    try:
        stream = storage.open(file.storage_uri)
    except NotFound as exc:  # its message names the bucket and key, which read keys are not shown
        raise NotFound(
            f"File {file.file_id} ({file.name!r}) is gone from storage: it was "
            "moved or deleted since ingest.",
            file_id=file.file_id,
        ) from exc
    except StorageError as exc:
        raise StorageError(
            f"The storage of file {file.file_id} cannot be read now; try again.",
            file_id=file.file_id,
        ) from exc
    return _checked(stream, file)
