"""Alembic environment: the URL is given by `engine.db.migrate` (or read from the settings)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from engine.db import datasets, embeddings, jobs, models, ui_sessions  # noqa: F401  (registers the tables on Base.metadata)
from engine.db.base import Base
from engine.db.session import sqlalchemy_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from engine.config import Settings

        url = Settings().database_url
    if not url:
        raise SystemExit("Set DATABASE_URL (or run `metalake db upgrade`, which finds the engine).")
    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = create_engine(_url(), poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
