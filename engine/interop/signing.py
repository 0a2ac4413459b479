"""Signed file URLs: a file's bytes fetched without an API key, until the URL expires.

The token is HMAC-SHA256 over the file's unique name and the expiry (Unix seconds), keyed by
METALAKE_SIGNING_KEY (else `<home>/signing.key`, generated on first use); keys listed in
METALAKE_SIGNING_PREVIOUS_KEYS still verify, so a key can be rotated without breaking the URLs
already handed out. Rotation and the route: docs/predict.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from engine.config import Settings
from engine.errors import InvalidInput, SignedUrlExpired, SignedUrlInvalid

SIGNED_FILES_PATH = "/api/v1/signed/files"  # the route streaming a file to a signed URL
KEY_FILE = "signing.key"
MAX_SECONDS = 7 * 24 * 3600  # the longest a URL may live, as S3's presigned URLs
_KEY_BYTES = 32


def signed_url(
    settings: Settings,
    unique_name: str,
    *,
    expires_in: int | None = None,
    base_url: str | None = None,
) -> str:
    """An absolute URL fetching the file `unique_name` without a key for `expires_in` seconds
    (METALAKE_SIGNED_URL_SECONDS when None), at `base_url` (else the engine's public URL)."""
    return signed_url_until(settings, unique_name, expires_in=expires_in, base_url=base_url)[0]


def signed_url_until(
    settings: Settings,
    unique_name: str,
    *,
    expires_in: int | None = None,
    base_url: str | None = None,
) -> tuple[str, int]:
    """`signed_url` and the Unix time it expires at."""
    expires = expiry(settings, expires_in)
    query = urlencode({"expires": expires, "token": token(settings, unique_name, expires)})
    base = (base_url or public_base_url(settings)).rstrip("/")
    return f"{base}{SIGNED_FILES_PATH}/{quote(unique_name, safe='')}?{query}", expires


def verify(settings: Settings, unique_name: str, expires: int, token: str) -> None:
    """Return if `token` signs `unique_name` until `expires` with the current or a previous
    key and that time has not passed; else raise `SignedUrlInvalid` or `SignedUrlExpired`."""
    presented = token.encode("ascii", errors="replace")
    if not any(
        hmac.compare_digest(presented, _token(key, unique_name, expires).encode())
        for key in signing_keys(settings)
    ):
        raise SignedUrlInvalid(unique_name=unique_name)
    if expires <= time.time():
        raise SignedUrlExpired(
            f"The signed URL for {unique_name!r} expired at {expires} (Unix time); ask the "
            f"engine for a new one (GET /api/v1/files/{quote(unique_name, safe='')}/url).",
            unique_name=unique_name,
            expires=expires,
        )


def expiry(settings: Settings, expires_in: int | None) -> int:
    """The Unix time a URL made now for `expires_in` seconds stops working."""
    seconds = settings.signed_url_seconds if expires_in is None else expires_in
    if not 0 < seconds <= MAX_SECONDS:
        raise InvalidInput(
            f"expires_in must be between 1 and {MAX_SECONDS} seconds (7 days); got {seconds}.",
            expires_in=seconds,
        )
    return int(time.time()) + seconds


def token(settings: Settings, unique_name: str, expires: int) -> str:
    """The token of `unique_name` until `expires`, signed with the current key."""
    return _token(signing_keys(settings)[0], unique_name, expires)


def signing_keys(settings: Settings) -> list[str]:
    """The current key first, then the previous keys still accepted."""
    current = settings.signing_key or _key_from_home(settings.home / KEY_FILE)
    previous = [key.strip() for key in settings.signing_previous_keys.split(",")]
    return [current, *(key for key in previous if key)]


def public_base_url(settings: Settings) -> str:
    """METALAKE_PUBLIC_URL, else the address the API listens on."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - every address: reach it on loopback
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def _token(key: str, unique_name: str, expires: int) -> str:
    message = f"{expires}\n{unique_name}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _key_from_home(path: Path) -> str:
    """The key kept in `path`; the first caller creates it (0600, atomically: processes
    starting together agree on one key)."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(_KEY_BYTES)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    try:
        os.link(temporary, path)  # fails if another process made the key first
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()
