"""Factories for the annotation tests: collections of real (Pillow-made) images registered
directly through the `session` fixture, independent of the ingest code."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.db.models import Collection, File, collection_files
from engine.storage import file_uri


@dataclass(frozen=True)
class LakeImage:
    file_id: int
    unique_name: str
    path: Path
    width: int
    height: int


def make_collection(
    session: Session, root: Path, name: str, images: dict[str, tuple[int, int]]
) -> tuple[int, dict[str, LakeImage]]:
    """Create `name` with one real image per relative path (`{"a/b.jpg": (w, h)}`) under
    `root`, registered like ingest does; commits so the API sees it."""
    collection = Collection(name=name, content_type="image")
    session.add(collection)
    session.flush()
    made: dict[str, LakeImage] = {}
    for relative, (width, height) in images.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (len(made) * 40 % 256, 120, 200)
        Image.new("RGB", (width, height), colour).save(path)
        data = path.read_bytes()
        row = File(
            unique_name=f"{name}_{relative.replace('/', '_')}",
            storage_uri=file_uri(path),
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            content_type="image",
            width=width,
            height=height,
        )
        session.add(row)
        session.flush()
        session.execute(
            insert(collection_files).values(collection_id=collection.id, file_id=row.id)
        )
        made[relative] = LakeImage(row.id, row.unique_name, path, width, height)
    session.commit()
    return collection.id, made
