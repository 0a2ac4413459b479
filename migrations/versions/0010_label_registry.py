"""The label registry: labels (name, description, attributes) and named groups of them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("name", name=op.f("uq_labels_name")),
    )
    op.create_table(
        "label_groups",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_label_groups_name")),
    )
    op.create_table(
        "label_group_members",
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("label_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["label_groups.id"],
            name=op.f("fk_label_group_members_group_id_label_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["labels.id"],
            name=op.f("fk_label_group_members_label_id_labels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "label_id", name=op.f("pk_label_group_members")),
    )
    op.create_index(
        "ix_label_group_members_label_id", "label_group_members", ["label_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_label_group_members_label_id", table_name="label_group_members")
    op.drop_table("label_group_members")
    op.drop_table("label_groups")
    op.drop_table("labels")
