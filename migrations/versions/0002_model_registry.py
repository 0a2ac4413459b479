"""Model registry: models (name, application, system default) and immutable model versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 05:49:17.937397
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# A version's bundle never changes: any UPDATE is refused, except recording `embedding_dim`
# once (it is measured on first use when the bundle does not declare it).
IMMUTABLE_VERSIONS = """
CREATE FUNCTION model_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.model_id, NEW.version, NEW.bundle_uri, NEW.sha256, NEW.size_bytes,
        NEW.label_list, NEW.weights_file, NEW.manifest, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.model_id, OLD.version, OLD.bundle_uri, OLD.sha256, OLD.size_bytes,
        OLD.label_list, OLD.weights_file, OLD.manifest, OLD.created_at)
       OR (OLD.embedding_dim IS NOT NULL AND NEW.embedding_dim IS DISTINCT FROM OLD.embedding_dim)
    THEN
        RAISE EXCEPTION 'model versions are immutable: register a new version instead'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
    FOR EACH ROW EXECUTE FUNCTION model_versions_immutable();
"""


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("application", sa.String(length=32), nullable=False),
        sa.Column(
            "is_system_default", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "application IN ('autotagging', 'auto_annotation', 'embedding')",
            name=op.f("ck_models_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_index(
        "uq_models_system_default",
        "models",
        ["application"],
        unique=True,
        postgresql_where=sa.text("is_system_default"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bundle_uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("label_list", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("weights_file", sa.Text(), nullable=True),
        sa.Column(
            "manifest",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "embedding_dim IS NULL OR embedding_dim > 0",
            name=op.f("ck_model_versions_embedding_dim"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_model_versions_version")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_versions_model_id_version")),
    )
    op.execute(IMMUTABLE_VERSIONS)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS model_versions_immutable ON model_versions")
    op.execute("DROP FUNCTION IF EXISTS model_versions_immutable()")
    op.drop_table("model_versions")
    op.drop_index(
        "uq_models_system_default",
        table_name="models",
        postgresql_where=sa.text("is_system_default"),
    )
    op.drop_table("models")
