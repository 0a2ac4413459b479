"""Bulk-built HNSW indexes: what a space's index covers, build requests, last writes by space.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "embedding_spaces",
        sa.Column("indexed_rows", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "embedding_spaces", sa.Column("index_built_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("embedding_spaces", sa.Column("index_build_seconds", sa.Float(), nullable=True))
    op.add_column(
        "embedding_spaces",
        sa.Column("index_requested_at", sa.DateTime(timezone=True), nullable=True),
    )
    # When a space was last written (its newest vector) is what the index sweep looks up.
    op.create_index(
        "ix_embeddings_space_id_created_at", "embeddings", ["space_id", "created_at"], unique=False
    )
    # Spaces indexed before this revision got their index with their first vectors: count it
    # as built over their current rows.
    op.execute(
        "UPDATE embedding_spaces s SET index_built_at = now(), "
        "indexed_rows = (SELECT count(*) FROM embeddings e WHERE e.space_id = s.id) "
        "WHERE index_name IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("embedding_spaces", "index_requested_at")
    op.drop_column("embedding_spaces", "index_build_seconds")
    op.drop_column("embedding_spaces", "index_built_at")
    op.drop_column("embedding_spaces", "indexed_rows")
    op.drop_index("ix_embeddings_space_id_created_at", table_name="embeddings")
