"""System models: `models.is_system` marks the models the engine installed itself.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 22:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "models",
        sa.Column("is_system", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    # `default-*` names are reserved for the models `install-defaults` registers.
    op.execute(
        "UPDATE models SET is_system = true "
        "WHERE is_system_default OR name = 'default' OR name LIKE 'default-%'"
    )


def downgrade() -> None:
    op.drop_column("models", "is_system")
