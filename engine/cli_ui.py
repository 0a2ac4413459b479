"""`metalake ui`: a one-time sign-in link to the gallery, printed and opened in a browser."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer


def ui(
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the link in a browser, if one exists.")
    ] = True,
) -> None:
    """Print a one-time link signing a browser in to the gallery (/ui/) of the local engine.

    The link acts with the key the CLI uses (METALAKE_API_KEY, else the key `metalake up`
    wrote); it works once, for ten minutes, and the browser then holds a session, not the key.
    Written straight to the engine's database, as `metalake keys` does.
    """
    from engine import auth
    from engine.cli_common import reachable_database_url
    from engine.cli_jobs import sdk_client
    from engine.config import Settings
    from engine.db.session import make_engine, make_session_factory, session_scope
    from engine.errors import Unauthorized
    from engine.ui import pages, sessions

    with sdk_client() as client:
        url, key = client.url, client.api_key
    if not key:
        raise Unauthorized(
            "No API key to sign in with: set METALAKE_API_KEY, or start the local engine "
            "with `metalake up` (it writes one)."
        )
    db_engine = make_engine(reachable_database_url(Settings()), pool_size=1)
    try:
        with session_scope(make_session_factory(db_engine)) as session:
            principal = auth.authenticate(session=session, key=key)
            token, _ = sessions.create_link(session=session, key_id=principal.key_id)
    finally:
        db_engine.dispose()
    link = f"{url}{pages.PREFIX}/signin/{token}"
    minutes = int(sessions.LINK_LIFETIME.total_seconds() // 60)
    typer.echo(f"Open the gallery (the link works once, for {minutes} minutes):")
    typer.echo(f"    {link}")
    if open_browser and _has_browser():
        webbrowser.open(link)


def _has_browser() -> bool:
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def register_ui_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("ui")(ui)
