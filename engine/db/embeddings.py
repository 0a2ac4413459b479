"""The embeddings tables: embedding spaces and their vectors (migrations 0003, 0005).

An *embedding space* is where comparable vectors live: one per registered embedding model
version (`model_version_id` set), or one per external name given to `insert_image_embeddings`
(vectors computed elsewhere). Each space has one dimension and, once it has vectors, its own
partial HNSW index on `(vector::halfvec(dim))` (pgvector's way to index several dimensions in
one column; 2048-d needs halfvec).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, created_at_column


class EmbeddingSpace(Base):
    __tablename__ = "embedding_spaces"
    __table_args__ = (CheckConstraint("dim > 0 AND dim <= 4000", name="dim"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    dim: Mapped[int] = mapped_column(Integer)
    model_version_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="CASCADE"), unique=True
    )
    # Name of the partial HNSW index, once built in bulk (engine/embeddings/indexing.py).
    index_name: Mapped[str | None] = mapped_column(String(63))
    # The rows the last bulk build covered, when it ended and how long it took; when a build
    # was last sent to a worker (cleared when it ends).
    indexed_rows: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    index_built_at: Mapped[datetime | None] = mapped_column()
    index_build_seconds: Mapped[float | None] = mapped_column(Float)
    index_requested_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (
        UniqueConstraint("space_id", "file_id"),
        Index("ix_embeddings_file_id", "file_id"),
        # a space's last write, for the index sweep (engine/embeddings/indexing.py)
        Index("ix_embeddings_space_id_created_at", "space_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("embedding_spaces.id", ondelete="CASCADE")
    )
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    # No fixed dimension: spaces differ. Each space's index casts to halfvec(dim).
    vector: Mapped[Any] = mapped_column(Vector())
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
