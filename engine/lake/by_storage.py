"""Files by where they are stored: the unique names registered at each storage URI."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import File
from sdk.schemas_lookup import StorageMatch, StorageMatches


def files_at(*, session: Session, storage_uris: list[str]) -> StorageMatches:
    """For each URI, in the order given, the unique names of the files stored there."""
    found: dict[str, list[str]] = {}
    rows = session.execute(
        select(File.storage_uri, File.unique_name)
        .where(File.storage_uri.in_(set(storage_uris)))
        .order_by(File.unique_name)
    )
    for uri, name in rows:
        found.setdefault(uri, []).append(name)
    return StorageMatches(
        matches=[StorageMatch(storage_uri=u, unique_names=found.get(u, [])) for u in storage_uris]
    )
