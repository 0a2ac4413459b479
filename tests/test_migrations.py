"""The migrations produce exactly the schema the models describe, and downgrade cleanly."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, text

from engine.db import datasets, embeddings, jobs, models, ui_sessions  # noqa: F401
from engine.db.base import Base
from engine.db.migrate import alembic_config
from engine.db.session import sqlalchemy_url
from sdk.vocabulary import Application, ItemStatus, JobKind, JobStatus, Platform


def test_migrated_schema_matches_the_models(template_db: str) -> None:
    engine = create_engine(sqlalchemy_url(template_db))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        vector = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
    assert vector is not None
    assert vector.startswith("0.8")


@pytest.mark.parametrize(
    ("constraint", "vocabulary"),
    [
        ("ck_jobs_kind", JobKind),
        ("ck_jobs_status", JobStatus),
        ("ck_jobs_platform", Platform),
        ("ck_job_items_status", ItemStatus),
        ("ck_models_application", Application),
    ],
)
def test_check_constraints_list_the_vocabulary(
    template_db: str, constraint: str, vocabulary: type[StrEnum]
) -> None:
    """The migrated database accepts exactly the values of the enum the code uses."""
    with psycopg.connect(template_db) as conn:
        row = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (constraint,)
        ).fetchone()
    assert row is not None, f"{constraint} is missing"
    assert re.findall(r"'([^']*)'", row[0]) == [member.value for member in vocabulary]


def test_downgrade_to_base_and_back(postgres_server_url: str) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = postgres_server_url.rsplit("/", 1)[0] + "/" + name
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_name <> 'alembic_version'"
            )
        ).scalar()
    engine.dispose()
    assert tables == 0
    command.upgrade(config, "head")
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
