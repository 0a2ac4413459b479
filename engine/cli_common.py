"""Helpers shared by the `metalake` sub-commands."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from engine.config import Settings


def echo_err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def settings_epilog() -> str:
    """The configuration table for `metalake --help` (reads the Settings class, not the env)."""
    from engine.config import settings_table

    lines = [
        "Configuration (environment variables; `metalake up` passes them to the API and worker):",
        "",
    ]
    for variable, default, description in settings_table():
        lines.append(f"  {variable}  [default: {default}]")
        lines.extend(
            textwrap.wrap(
                description, width=88, initial_indent="      ", subsequent_indent="      "
            )
        )
    # Click rewraps paragraphs unless they start with \b.
    return "\n\n".join("\b\n" + block for block in _paragraphs(lines))


def _paragraphs(lines: list[str]) -> list[str]:
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return ["\n".join(block) for block in blocks if block]


def reachable_database_url(settings: Settings) -> str:
    """DATABASE_URL, else the embedded database of `metalake up`; checked to answer."""
    from engine.errors import ServiceUnavailable
    from engine.runtime.checks import postgres_problem
    from engine.runtime.state import current_state

    state = current_state(settings)
    url = settings.database_url or state.database_url
    problem = postgres_problem(url)
    if problem:
        where = (
            "DATABASE_URL"
            if settings.database_url
            else (f"the embedded database of {settings.home} (start it with `metalake up`)")
        )
        raise ServiceUnavailable(f"Cannot reach {where}: {problem}")
    return url


def parse_json_option(value: str | None, option: str) -> dict[str, Any] | None:
    """Parse a JSON-object option such as `--meta '{"camera": "cam 1"}'`."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from exc
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object ({...})", param_hint=option)
    return parsed
