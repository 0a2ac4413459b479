"""An index on files.storage_uri: the trash checks whether other files share the bytes it
removes, and files are looked up by where they are stored.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 02:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_files_storage_uri", "files", ["storage_uri"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_files_storage_uri", table_name="files")
