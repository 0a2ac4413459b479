"""The gallery's thumbnails: a small JPEG per image, made on first view and kept in the
engine's storage under `<home>/thumbnails/`, named by the image's SHA-256 (the same bytes in
two collections share one thumbnail, and a file's thumbnail never goes stale).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from engine.interop.draw import open_image
from engine.lake.content import StoredFile, open_content
from engine.storage import Storage

SIDE = 256  # the longest side of a thumbnail, in pixels (cards show it at up to 200 css px)
QUALITY = 80


def cache_path(home: Path, sha256: str) -> Path:
    return home / "thumbnails" / sha256[:2] / f"{sha256}-{SIDE}.jpg"


def thumbnail(*, home: Path, found: StoredFile, storage: Storage) -> bytes:
    """The thumbnail of the image `found`: read from the cache, else made and cached."""
    path = cache_path(home, found.sha256)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data = b"".join(open_content(found, storage=storage))
    image = open_image(data)
    image.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY, optimize=True)
    jpeg = out.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(jpeg)
        os.replace(partial, path)  # atomic: a reader sees no thumbnail or a whole one
    finally:
        Path(partial).unlink(missing_ok=True)
    return jpeg
