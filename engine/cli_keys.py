"""`metalake keys create | list | revoke`: straight to the database, so it works at bootstrap
(before any key exists) with DATABASE_URL or the embedded engine of `metalake up`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

keys_app = typer.Typer(
    help="API keys (stored hashed; a key is shown once, when created).", no_args_is_help=True
)


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


@contextmanager
def _session() -> Iterator[Session]:
    from engine.cli_common import reachable_database_url
    from engine.config import Settings
    from engine.db.session import make_engine, make_session_factory, session_scope

    db_engine = make_engine(reachable_database_url(Settings()), pool_size=1)
    try:
        with session_scope(make_session_factory(db_engine)) as session:
            yield session
    finally:
        db_engine.dispose()


@keys_app.command("create")
def create(
    scope: Annotated[
        Scope, typer.Option(help="read < write < admin; each includes the ones before it.")
    ],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Create an API key and print it (it cannot be shown again)."""
    from engine import auth

    with _session() as session:
        key, row = auth.create_key(
            session=session, name=name or f"cli {scope.value} key", scopes=[scope.value]
        )
        key_id, key_name = row.id, row.name
    typer.echo(
        f"Created API key {key_id} ({key_name!r}, scope {scope.value}). "
        "It is shown only this once:",
        err=True,
    )
    typer.echo(key)


@keys_app.command("list")
def list_() -> None:
    """List API keys (id, name, prefix, scopes, use, revocation)."""
    from engine import auth

    with _session() as session:
        rows = [
            (k.id, k.name, k.prefix, ",".join(k.scopes), k.created_at, k.last_used_at, k.revoked_at)
            for k in auth.list_keys(session=session)
        ]
    typer.echo(
        f"{'id':>4}  {'prefix':<13} {'scopes':<8} {'created':<16} {'last used':<16} "
        f"{'state':<8} name"
    )
    for key_id, name, prefix, scopes, created, used, revoked in rows:
        typer.echo(
            f"{key_id:>4}  {prefix + '…':<13} {scopes:<8} {_when(created):<16} "
            f"{_when(used):<16} {'revoked' if revoked else 'active':<8} {name}"
        )


@keys_app.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from engine import auth
    from engine.db.models import ApiKey
    from engine.errors import NotFound

    with _session() as session:
        if session.get(ApiKey, key_id) is None:
            raise NotFound(f"No API key with id {key_id} (see `metalake keys list`).")
        auth.revoke_key(session=session, key_id=key_id)
    typer.echo(f"revoked API key {key_id}")


def _when(moment: object) -> str:
    from datetime import datetime

    return moment.strftime("%Y-%m-%d %H:%M") if isinstance(moment, datetime) else "-"
