"""What only the engine's own user may read under METALAKE_HOME: its folders (0700), the
passwords generated for the embedded PostgreSQL and Redis (0600 files), and URLs as shown.

As root, the embedded PostgreSQL runs as its own system user, which must pass through the
home and the logs folder to reach its data and log: those are 0710 with that user's group
(it may traverse them, no one else may; `engine.runtime.postgres`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine.runtime.processes import write_private

PASSWORD_BYTES = 32  # secrets.token_urlsafe: 43 characters of [A-Za-z0-9_-], safe in a URL


def private_dir(path: Path, *, traverse_gid: int | None = None) -> Path:
    """Create `path` (and parents) if needed and keep it to its owner: 0700, or 0710 with
    group `traverse_gid` when another system user must pass through it."""
    path.mkdir(parents=True, exist_ok=True)
    if traverse_gid is None:
        path.chmod(0o700)
    else:
        os.chown(path, -1, traverse_gid)
        path.chmod(0o710)
    return path


def read_secret(path: Path) -> str | None:
    """The password kept in `path`, or None when there is none yet."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def read_or_create_secret(path: Path) -> str:
    """The password kept in `path`; the first call generates it and writes it (mode 0600)."""
    existing = read_secret(path)
    if existing is not None:
        path.chmod(0o600)  # a file left readable (copied, restored) is made private again
        return existing
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    write_private(path, password + "\n")
    return password


def masked_url(url: str) -> str:
    """`url` with its password, if any, shown as ***: for status lines and messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
