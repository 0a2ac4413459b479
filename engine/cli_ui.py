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
    from engine.cli_common import reachable_database_url
    from engine.cli_jobs import sdk_client
    from engine.config import Settings
    from engine.errors import Unauthorized
    from engine.ui import sessions, signin

    with sdk_client() as client:
        url, key = client.url, client.api_key
    if not key:
        raise Unauthorized(
            "No API key to sign in with: set METALAKE_API_KEY, or start the local engine "
            "with `metalake up` (it writes one)."
        )
    database_url = reachable_database_url(Settings())
    link = signin.one_time_link(database_url=database_url, base_url=url, key=key)
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
