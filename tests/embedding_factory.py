"""Files for embedding tests, inserted directly (no images needed): a collection and its files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.db.models import Collection, File, collection_files


def make_files(session: Session, collection: str, count: int, *,
               metadata: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """`count` image files named `<collection>_img<i>.jpg` in a new collection; their names."""
    collection_id = session.scalars(insert(Collection).values(name=collection,
                                                              content_type="image")
                                    .returning(Collection.id)).one()
    names = [f"{collection}_img{i}.jpg" for i in range(count)]
    if not names:
        session.commit()
        return names
    ids = session.scalars(insert(File).returning(File.id, sort_by_parameter_order=True), [
        {"unique_name": name, "storage_uri": f"file:///lake/{name}", "sha256": "0" * 64,
         "size_bytes": 1, "content_type": "image",
         "metadata_": metadata[i] if metadata else {}}
        for i, name in enumerate(names)]).all()
    session.execute(insert(collection_files),
                    [{"collection_id": collection_id, "file_id": i} for i in ids])
    session.commit()
    return names


def collection_id(session: Session, name: str) -> int:
    return session.scalars(select(Collection.id).where(Collection.name == name)).one()
