"""`metalake predict`: one image through a registered model, as JSON or an annotated JPEG;
`metalake render` and `metalake url` for lake files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def predict(
    image: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The image file to run.")
    ],
    model: Annotated[str, typer.Option(help="A detection model's name (or name@N).")],
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Detections under this score are left out.")
    ] = 0.5,
    resolution: Annotated[
        int | None, typer.Option(help="Side of the square the model sees (default 640).")
    ] = None,
    annotated: Annotated[
        Path | None, typer.Option(help="Also write the image with the detections drawn (JPEG).")
    ] = None,
) -> None:
    """Print the model's detections in IMAGE as JSON (pixels of IMAGE)."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        detections = client.predict(image, model, threshold, resolution, annotated)
    typer.echo(json.dumps(detections, indent=1))
    if annotated is not None:
        typer.echo(f"drew {len(detections)} detection(s) on {annotated}", err=True)


def render(
    item: Annotated[str, typer.Argument(help="A lake image: its unique name or id.")],
    out: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the JPEG.")],
    sources: Annotated[str, typer.Option(help="human, machine, or both.")] = "machine,human",
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
) -> None:
    """Write a lake image with its stored annotations drawn."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        client.render_item(item, out, sources.split(","), min_confidence)
    typer.echo(str(out))


def url(
    unique_name: Annotated[str, typer.Argument(help="A lake file's unique name.")],
    expires_in: Annotated[
        int | None, typer.Option(help="Seconds the URL works (default: an hour).")
    ] = None,
) -> None:
    """Print a URL that fetches a lake file without an API key until it expires."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        typer.echo(client.get_downloadable_url(unique_name, expires_in))


def register_predict_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("predict")(predict)
    app.command("render")(render)
    app.command("url")(url)
