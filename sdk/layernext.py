"""`LayerNextClient`: LayerNext's SDK client (package `layernext` 2.3.4) on this engine, so a
LayerNext script runs with only its import line changed:

    from sdk import LayerNextClient   # was: from layernext import LayerNextClient
    client = LayerNextClient(api_key, secret, "http://localhost:8000")

Every public call of LayerNext's client is here with its name, parameters and defaults.
Calls return LayerNext's shapes (`{"jobId"}`, `{"is_success", "job_id", "collection_id"}`,
`Tags`, camelCase field names); a call whose feature the engine has not got yet raises
`sdk.errors.NotSupportedYet` saying what to use instead. docs/layernext.md lists each call
with its status.

It wraps an `sdk.Client` (composition, on `.client`) rather than extending it: a dozen calls
share their names with `sdk.Client` but not their parameters or results (`auto_tag_collection`
returns `{"jobId"}` here and the whole job there; `upload_files_to_collection` a dict here and
the collection id there), so a subclass would break `sdk.Client`'s own contract for those
calls. The native client stays one attribute away: `client.client.predict(...)`.
"""

from __future__ import annotations

from typing import Any

from sdk._layernext_analysis import AnalysisCompat
from sdk._layernext_base import LayerNextBase
from sdk._layernext_lake import LakeCompat
from sdk._layernext_studio import StudioCompat
from sdk.client import Client

KEY_PREFIX = "mlk_"


def _key(api_key: str | None, secret: str | None) -> str | None:
    """The engine key among LayerNext's key and secret: the one that is an engine key (the
    other is ignored), else `api_key`."""
    for value in (api_key, secret):
        if value and value.startswith(KEY_PREFIX):
            return value
    return api_key or None


class LayerNextClient(LakeCompat, AnalysisCompat, StudioCompat, LayerNextBase):
    """LayerNext's client on a MetaLake engine.

    `api_key`: an engine API key (`metalake keys create`); `secret` is not needed (pass "",
    or the secret of a LayerNext script: it is ignored unless it is the engine key);
    `layernext_url`: the engine's URL (None: `METALAKE_URL`, else the local engine).
    """

    def __init__(self, api_key: str, secret: str, layernext_url: str, **kwargs: Any) -> None:
        super().__init__(Client(url=layernext_url or None, api_key=_key(api_key, secret), **kwargs))
        self.layernext_url = self.client.url

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> LayerNextClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LayerNextClient"]
