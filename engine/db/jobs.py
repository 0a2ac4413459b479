"""The jobs tables: jobs, their items (migration 0003) and chunk leases (0004).

A job snapshots the files it will process into `job_items` when it is planned; chunks of items
run on workers and their results land in the lake's `tags` / `annotations` (with `job_id` and
`model_version_id`) or in `embeddings` (engine/db/embeddings.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, created_at_column
from engine.db.models import _in
from sdk.vocabulary import ItemStatus, JobKind, JobStatus, Platform


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("kind", JobKind), name="kind"),
        CheckConstraint(_in("status", JobStatus), name="status"),
        CheckConstraint(_in("platform", Platform), name="platform"),
        Index("ix_jobs_status", "status"),
        # insert_image_embeddings_batch(..., session_id) groups calls into one job record.
        Index(
            "uq_jobs_session_id",
            "session_id",
            unique=True,
            postgresql_where=text("session_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), server_default=text("'queued'"))
    platform: Mapped[str] = mapped_column(String(16))
    # The request as validated: query, filter, input_resolution, confidence_threshold, prompt...
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    model_version_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    collection_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("collections.id", ondelete="SET NULL")
    )
    session_id: Mapped[str | None] = mapped_column(String(255))
    total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    error: Mapped[str | None] = mapped_column(Text)
    # What the user must know about how the job ran, e.g. "model code is NOT sandboxed: ...".
    warnings: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class JobItem(Base):
    __tablename__ = "job_items"
    __table_args__ = (
        CheckConstraint(_in("status", ItemStatus), name="status"),
        UniqueConstraint("job_id", "file_id"),
        Index("ix_job_items_job_id_chunk", "job_id", "chunk"),
        Index("ix_job_items_job_id_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"))
    file_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("files.id", ondelete="CASCADE"))
    chunk: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = created_at_column()


class JobChunk(Base):
    """A chunk's lease (migration 0004): the worker running it and until when, renewed while it
    runs. A lapsed lease on a chunk with pending items means its worker died: the recovery
    sweep (`engine/jobs/recovery.py`) sends the chunk to the queue again. Chunk -1
    (`PLAN_CHUNK`) is the lease of the job's planning: lapsed, the job is planned again."""

    __tablename__ = "job_chunks"
    __table_args__ = (Index("ix_job_chunks_lease_expires_at", "lease_expires_at"),)

    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    # `host:pid:task` of the worker process running the chunk; NULL when none does
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    runs: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # leases taken
    recoveries: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # re-sent
    updated_at: Mapped[datetime] = created_at_column()
