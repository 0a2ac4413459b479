"""`metalake export` and `metalake datasets`: results out of the lake in a training format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def export(
    out: Annotated[
        Path,
        typer.Option(
            "--out", file_okay=False, help="Folder to write (new, empty, or an earlier export)."
        ),
    ],
    format: Annotated[
        str, typer.Option(help="coco, yolo, voc, label_studio, metalake_json or annotated.")
    ],
    collection: Annotated[
        str | None, typer.Option(help="The collection to export: its name or id.")
    ] = None,
    datalake: Annotated[
        str | None, typer.Option(help="Export the whole lake's files of this type: image or video.")
    ] = None,
    query: Annotated[str, typer.Option(help="The lake's query language (docs/query.md).")] = "",
    filter: Annotated[
        str | None, typer.Option(help='A JSON filter, e.g. {"annotation_types": ["human"]}.')
    ] = None,
    media: Annotated[bool, typer.Option(help="Copy the images into the export.")] = True,
    sources: Annotated[str, typer.Option(help="human, machine, or both.")] = "human,machine",
    include_proposals: Annotated[
        bool, typer.Option(help="Also export preview jobs' proposed annotations.")
    ] = False,
    yolo_task: Annotated[str, typer.Option(help="detect or segment (yolo only).")] = "detect",
) -> None:
    """Export a collection (--collection) or the lake (--datalake image) in a format."""
    from engine.cli_common import echo_err
    from engine.cli_jobs import sdk_client

    if (collection is None) == (datalake is None):
        echo_err("give --collection NAME or --datalake image|video, exactly one of them")
        raise typer.Exit(2)
    try:
        parsed_filter = json.loads(filter) if filter else None
    except json.JSONDecodeError as exc:
        echo_err(f"--filter is not JSON: {exc.msg} at column {exc.colno}")
        raise typer.Exit(2) from None
    chosen = [s.strip() for s in sources.split(",") if s.strip()]
    with sdk_client() as client:
        if collection is not None:
            report = client.export_collection(
                client.collection_id(collection), format, out, query, parsed_filter, media,
                chosen, include_proposals, yolo_task,
            )  # fmt: skip
        else:
            assert datalake is not None
            report = client.export_datalake(
                datalake, format, out, query, parsed_filter, media, chosen, include_proposals,
                yolo_task,
            )  # fmt: skip
    typer.echo(json.dumps(report, indent=1))


def register_export_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("export")(export)
