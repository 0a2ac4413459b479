"""`metalake predict`: one image through a registered model, as JSON or an annotated JPEG."""

from __future__ import annotations

import typer


def register_predict_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
