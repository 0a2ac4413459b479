"""The lake's tables (SQLAlchemy 2.0 typed models).

Migrations in `migrations/` create exactly this schema; `tests/test_migrations.py` checks it.
The registry's `models` / `model_versions` join in migration 0002; job and embedding tables in
their own. The lake's `model_version_id` and `job_id` columns are where those attach.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db.base import Base, created_at_column
from sdk.vocabulary import Application

CONTENT_TYPES = ("image", "video")
ANNOTATION_SHAPES = ("box", "polygon", "tag", "keypoints")
ANNOTATION_SOURCES = ("raw", "human", "machine")
ANNOTATION_STATUSES = ("applied", "proposed")
SCOPES = ("read", "write", "admin")


def _in(column: str, values: Iterable[str]) -> str:
    """A CHECK that `column` holds one of `values` (a tuple, or a StrEnum's members)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


collection_files = Table(
    "collection_files",
    Base.metadata,
    Column(
        "collection_id",
        BigInteger,
        ForeignKey("collections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("file_id", BigInteger, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_collection_files_file_id", "file_id"),
)


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (CheckConstraint(_in("content_type", CONTENT_TYPES), name="content_type"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_column()

    files: Mapped[list[File]] = relationship(
        secondary=collection_files, back_populates="collections", lazy="raise"
    )


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint(_in("content_type", CONTENT_TYPES), name="content_type"),
        Index("ix_files_uploaded_at", "uploaded_at"),
        Index("ix_files_sha256", "sha256"),
        Index("ix_files_storage_uri", "storage_uri"),
        Index("ix_files_metadata", "metadata", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    unique_name: Mapped[str] = mapped_column(Text, unique=True)
    storage_uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    uploaded_at: Mapped[datetime] = created_at_column()
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", server_default=text("'{}'::jsonb")
    )

    collections: Mapped[list[Collection]] = relationship(
        secondary=collection_files, back_populates="files", lazy="raise"
    )


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_in("shape", ANNOTATION_SHAPES), name="shape"),
        CheckConstraint(_in("source", ANNOTATION_SOURCES), name="source"),
        CheckConstraint(_in("status", ANNOTATION_STATUSES), name="status"),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"
        ),
        Index("ix_annotations_file_id", "file_id"),
        Index("ix_annotations_label", "label"),
        Index("ix_annotations_operation_id", "operation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    frame_index: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(255))
    shape: Mapped[str] = mapped_column(String(16))
    # Pixel coordinates of the original image: box {"x1","y1","x2","y2"},
    # polygon {"points": [[x, y], ...]}, keypoints {"points": [[x, y, v], ...]}, tag {}.
    geometry: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    confidence: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'applied'"))
    # Which upload set (`operation_unique_id`), model version or job wrote it.
    operation_id: Mapped[str | None] = mapped_column(String(255))
    model_version_id: Mapped[int | None] = mapped_column(BigInteger)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (
        CheckConstraint(_in("source", ANNOTATION_SOURCES), name="source"),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"
        ),
        # One tag per (file, name, source, model version); NULLS NOT DISTINCT makes the
        # human tag (no model version) unique too, so upserts are idempotent.
        UniqueConstraint(
            "file_id",
            "name",
            "source",
            "model_version_id",
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_tags_name", "name"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(BigInteger)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()


class IngestFailure(Base):
    """A file an upload could not register, with the reason (the rest of the upload went on)."""

    __tablename__ = "ingest_failures"
    __table_args__ = (Index("ix_ingest_failures_collection_id", "collection_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("collections.id", ondelete="CASCADE")
    )
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class ApiKey(Base):
    """Only its SHA-256 is stored: keys are 256-bit random, so no slow hash is needed."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Model(Base):
    """A registered model: a name and the application it serves; its bundles are the versions."""

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint(_in("application", Application), name="application"),
        # At most one system default per application.
        Index(
            "uq_models_system_default",
            "application",
            unique=True,
            postgresql_where=text("is_system_default"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    application: Mapped[str] = mapped_column(String(32))
    is_system_default: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Installed by the engine itself (`metalake models install-defaults`): deleted only when
    # forced (`store.delete_model`).
    is_system: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = created_at_column()

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model",
        lazy="raise",
        order_by="ModelVersion.version",
        passive_deletes=True,
    )


class ModelVersion(Base):
    """One immutable bundle of a model (migration 0002 refuses updates with a trigger, except
    setting `embedding_dim` once when it is measured on first use)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint("embedding_dim IS NULL OR embedding_dim > 0", name="embedding_dim"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    bundle_uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    label_list: Mapped[list[str] | None] = mapped_column(JSONB)
    embedding_dim: Mapped[int | None] = mapped_column(Integer)
    weights_file: Mapped[str | None] = mapped_column(Text)
    # [{"path": "code/inference.py", "size": 1234}, ...]
    manifest: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()

    model: Mapped[Model] = relationship(back_populates="versions", lazy="raise")


# -- the label registry (migration 0010) ---------------------------------------------------------
label_group_members = Table(
    "label_group_members",
    Base.metadata,
    Column(
        "group_id", BigInteger, ForeignKey("label_groups.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("label_id", BigInteger, ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_label_group_members_label_id", "label_id"),
)


class Label(Base):
    """A name of the label registry (LayerNext's system labels), with its description and
    attributes; annotations and tags name labels by this name."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    # [{"name": "colour", "values": ["red", "blue"]}, ...]
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()


class LabelGroup(Base):
    """A named set of labels, e.g. the labels of one project or model."""

    __tablename__ = "label_groups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = created_at_column()
