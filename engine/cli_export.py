"""`metalake export` and `metalake datasets`: results out of the lake in a training format."""

from __future__ import annotations

import typer


def register_export_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
