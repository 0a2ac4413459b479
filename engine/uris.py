"""Storage URIs, `file:///abs/path` and `s3://bucket/key`: made from a path, taken apart.

Plain functions with no settings, so that both `engine.config` and `engine.storage` use them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from engine.errors import InvalidPath


def file_uri(path: Path) -> str:
    return "file://" + quote(str(path.resolve()))


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise InvalidPath(f"Not a file:// URI: {uri}")
    return Path(unquote(parsed.path))


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidPath(f"Not an s3://bucket/key URI: {uri!r}", uri=uri)
    return parsed.netloc, parsed.path.lstrip("/")
