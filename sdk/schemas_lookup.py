"""Wire models of looking files up by where they are stored (docs/layernext.md)."""

from __future__ import annotations

from pydantic import Field

from sdk.schemas import Schema


class StorageLookup(Schema):
    storage_uris: list[str] = Field(min_length=1, max_length=1000)


class StorageMatch(Schema):
    storage_uri: str
    unique_names: list[str] = Field(
        description="The files registered at that URI: none, one, or several when the same "
        "bytes were registered under several names."
    )


class StorageMatches(Schema):
    matches: list[StorageMatch]
