"""Where an export's documents go: a folder, or a zip archive written to a stream that need
not seek (an HTTP response, a file being uploaded), one entry at a time.

Entries are stored with a fixed timestamp, so the same export gives the same archive; images
(already compressed) are stored as they are, documents deflated.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from engine.errors import InvalidPath

STORED_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".mp4", ".mov", ".avi", ".mkv", ".zip"}
)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def safe_path(path: str) -> str:
    """`path` if it is relative and stays inside the export (no `..`, no absolute path)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise InvalidPath(f"An export entry path must be relative and inside it, not {path!r}.")
    return pure.as_posix()


class FolderSink:
    """Writes each file under `root` (made if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = 0

    def write(self, path: str, data: bytes) -> None:
        target = self.root / safe_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.files += 1


class ChunkBuffer:
    """A write-only stream whose bytes are taken out with `drain`: what a zip written for an
    HTTP response writes into between two chunks it sends."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class ZipSink:
    """A zip archive written to `stream` entry by entry (no seeking); `close` writes the
    central directory."""

    def __init__(self, stream: IO[bytes] | ChunkBuffer) -> None:
        self._zip = zipfile.ZipFile(stream, "w")  # type: ignore[call-overload]
        self.files = 0

    def write(self, path: str, data: bytes) -> None:
        info = zipfile.ZipInfo(safe_path(path), date_time=ZIP_DATE)
        stored = PurePosixPath(path).suffix.lower() in STORED_SUFFIXES
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, data)
        self.files += 1

    def close(self) -> None:
        self._zip.close()
