"""Tables of exports and datasets (migration 0008): what an export job wrote, and datasets,
whose versions are frozen snapshots of file ids (with their split) and annotation ids.

A version's rows are written once, when it is made, and its annotations are copies: edits,
re-uploads and deletions of the lake's annotations later do not change what a version holds
(a file deleted from the lake leaves every version, with its annotations).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, created_at_column
from engine.db.models import _in

SPLITS = ("train", "validation", "test")


class ExportResult(Base):
    """The archive an export job wrote into managed storage."""

    __tablename__ = "export_results"

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    storage_uri: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    items: Mapped[int] = mapped_column(Integer)
    annotations: Mapped[int] = mapped_column(Integer)
    files: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = created_at_column()


class DatasetVersion(Base):
    """One snapshot: `selection` is the request that made it (collection, query, filter,
    sources, split), `labels` the labels it exports (empty: all)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("datasets.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    selection: Mapped[dict[str, object]] = mapped_column(JSONB)
    labels: Mapped[list[str]] = mapped_column(ARRAY(String(255)))
    export_types: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    items: Mapped[int] = mapped_column(Integer)
    annotations: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()


class DatasetVersionItem(Base):
    __tablename__ = "dataset_version_items"
    __table_args__ = (CheckConstraint(_in("split", SPLITS), name="split"),)

    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(16))


class DatasetVersionAnnotation(Base):
    """A copy of an annotation as it was when the version was made (`annotation_id` is the
    original's id, which may since have been edited or deleted)."""

    __tablename__ = "dataset_version_annotations"
    __table_args__ = (
        Index("ix_dataset_version_annotations_version_id_file_id", "version_id", "file_id"),
    )

    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    annotation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    frame_index: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(255))
    shape: Mapped[str] = mapped_column(String(16))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSONB)
    confidence: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[str | None] = mapped_column(String(255))
    model_version_id: Mapped[int | None] = mapped_column(BigInteger)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
