"""A file's bytes as the lake registered them, or a refusal: the content route's reads.

A file on the engine's disk is opened by its stored real path with no symlink followed
(`localfile.open_no_follow`), and its size and SHA-256 are checked against what ingest recorded
before the first byte is sent: the descriptor is hashed in chunks, rewound and streamed. The
descriptor pins the inode, so a path swapped for a symlink or another file after the check
changes nothing that is sent; bytes rewritten in place during the send are caught by hashing
them again on the way, and the response is cut off before it completes (its status is already
sent). This costs a second read of the file (from the page cache, for all but files larger than
it), and needs no state shared between API processes, which a cache of verified
(inode, size, mtime, ctime) would.

An S3 object is streamed and checked on the way only: reading it twice would double the
transfer, and a swapped S3 object exposes nothing a write key could not register directly.
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
        raise NotFound(f"File {file.file_id} ({file.name!r}) is gone from storage: it was "
                       "moved or deleted since ingest.", file_id=file.file_id) from exc
    except SymlinkInPath as exc:
        raise _changed(file, "its path now goes through a symlink") from exc
    except NotRegularFile as exc:
        raise _changed(file, "its path no longer names a regular file") from exc
    except OSError as exc:
        raise StorageError(f"Cannot read file {file.file_id}: {exc.strerror or exc}",
                           file_id=file.file_id) from exc
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
    """The bytes of `handle`, hashed on the way; an exception instead of the end if they are
    not the ingested ones (the server then closes the connection mid-body)."""
    digest = hashlib.sha256()
    size = 0
    with handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            size += len(chunk)
            if size > file.size_bytes:
                raise _changed(file, "it grew while being sent")
            digest.update(chunk)
            yield chunk
    if size != file.size_bytes or digest.hexdigest() != file.sha256:
        raise _changed(file, "its bytes changed while being sent")


def open_content(file: StoredFile, *, storage: Storage) -> Iterator[bytes]:
    """The file's bytes in chunks, only if they are those ingested (else `FileChangedSinceIngest`
    before the first chunk for a local file; the stream ends in that error for an S3 object)."""
    if urlparse(file.storage_uri).scheme == "file":
        return _checked(_open_local(file), file)
    try:
        stream = storage.open(file.storage_uri)
    except NotFound as exc:  # its message names the bucket and key, which read keys are not shown
        raise NotFound(f"File {file.file_id} ({file.name!r}) is gone from storage: it was "
                       "moved or deleted since ingest.", file_id=file.file_id) from exc
    except StorageError as exc:
        raise StorageError(f"The storage of file {file.file_id} cannot be read now; try again.",
                           file_id=file.file_id) from exc
    return _checked(stream, file)
