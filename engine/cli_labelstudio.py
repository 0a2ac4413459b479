"""`metalake labelstudio`: annotation projects in Label Studio from collections, and back."""

from __future__ import annotations

import typer


def register_labelstudio_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
