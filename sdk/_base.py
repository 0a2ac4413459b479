"""Connection handling shared by the SDK's call groups."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from sdk.errors import BadRequest, EngineUnreachable, MetaLakeError, error_for

API_PREFIX = "/api/v1"


def default_home() -> Path:
    home = os.environ.get("METALAKE_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("metalake", appauthor=False))


def local_engine() -> tuple[str | None, str | None]:
    """URL and admin key left by `metalake up` in METALAKE_HOME/client.json, if any."""
    path = default_home() / "client.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    return data.get("url"), data.get("api_key")


def same_engine(url: str, other: str) -> bool:
    """Whether two engine URLs name the same place: scheme, host and port (the scheme's default
    when left out) and path, compared without case in scheme and host and a trailing `/`."""

    def parts(value: str) -> tuple[str, str | None, int | None, str]:
        split = urlsplit(value.strip())
        scheme = split.scheme.lower()
        try:
            port = split.port or {"http": 80, "https": 443}.get(scheme)
        except ValueError:  # a port that is not a number: matches nothing
            return scheme, None, -1, value
        return scheme, split.hostname, port, split.path.rstrip("/")

    mine, theirs = parts(url), parts(other)
    return mine[1] is not None and mine == theirs


def either(ours: Any, theirs: Any, names: tuple[str, str], default: Any = None) -> Any:
    """One argument given under either of its two spellings (ours, LayerNext's): the one
    given, refused when both are given and differ."""
    if ours is not None and theirs is not None and ours != theirs:
        raise BadRequest(
            f"{names[0]}={ours!r} and {names[1]}={theirs!r} differ; they are two spellings "
            "of one argument: pass one.",
            code="invalid_input",
        )
    return default if ours is None and theirs is None else (ours if ours is not None else theirs)


class BaseClient:
    """HTTP plumbing: base URL, bearer key, JSON in and out, errors mapped to SDK exceptions."""

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, timeout: float = 120.0
    ) -> None:
        local_url, local_key = (None, None)
        if not (url or os.environ.get("METALAKE_URL")) or not (
            api_key or os.environ.get("METALAKE_API_KEY")
        ):
            local_url, local_key = local_engine()
        self.url = (url or os.environ.get("METALAKE_URL") or local_url or "").rstrip("/")
        # The local engine's admin key goes only to the URL written beside it: never to
        # another server named by `url` or METALAKE_URL.
        if local_key and not (local_url and same_engine(self.url, local_url)):
            local_key = None
        self.api_key = api_key or os.environ.get("METALAKE_API_KEY") or local_key
        if not self.url:
            raise EngineUnreachable(
                "No engine to talk to: pass Client(url=...), set METALAKE_URL, or start the "
                "local engine with `metalake up`."
            )
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._http = httpx.Client(base_url=self.url + API_PREFIX, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise EngineUnreachable(
                f"Cannot reach the engine at {self.url}: {exc}. Is it running? (`metalake status`)"
            ) from exc
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.is_error:
            raise error_for(response.status_code, body)
        return body

    def _get(self, path: str, **kwargs: Any) -> Any:
        return self._request("GET", path, **kwargs)

    def _post(self, path: str, **kwargs: Any) -> Any:
        return self._request("POST", path, **kwargs)

    def _patch(self, path: str, **kwargs: Any) -> Any:
        return self._request("PATCH", path, **kwargs)

    def _delete(self, path: str, **kwargs: Any) -> Any:
        return self._request("DELETE", path, **kwargs)

    def health(self) -> dict[str, Any]:
        """The engine's health (no key needed)."""
        result: dict[str, Any] = self._get("/health")
        return result


__all__ = ["BaseClient", "MetaLakeError"]
