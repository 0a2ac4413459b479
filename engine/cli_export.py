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


datasets_app = typer.Typer(
    help="Datasets: frozen, split snapshots of a selection, downloaded in a format.",
    no_args_is_help=True,
)


def _split(text: str) -> dict[str, float]:
    """`train=80,validation=10,test=10` -> {"train": 80.0, ...}."""
    from engine.cli_common import echo_err

    split: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            split[key.strip()] = float(value)
        except ValueError:
            echo_err(
                f"--split takes name=number pairs (train=80,validation=10,test=10), not {part!r}"
            )
            raise typer.Exit(2) from None
    return split


@datasets_app.command("create")
def datasets_create(
    name: Annotated[str, typer.Argument(help="The new dataset's name.")],
    split: Annotated[
        str,
        typer.Option(
            help="train=80,validation=10,test=10: percentages adding up to 100, else counts."
        ),
    ],
    collection: Annotated[str | None, typer.Option(help="A collection's name or id.")] = None,
    datalake: Annotated[str | None, typer.Option(help="The lake's files of this type.")] = None,
    query: Annotated[str, typer.Option(help="The lake's query language.")] = "",
    labels: Annotated[str, typer.Option(help="Comma-separated labels to keep (default all).")] = "",
    version_of: Annotated[
        int | None, typer.Option(help="Add a version to the dataset of this version id instead.")
    ] = None,
) -> None:
    """Make a dataset (or, with --version-of, a new version of one) and print it."""
    from engine.cli_common import echo_err
    from engine.cli_jobs import sdk_client

    if (collection is None) == (datalake is None):
        echo_err("give --collection NAME or --datalake image|video, exactly one of them")
        raise typer.Exit(2)
    chosen = [label for label in labels.split(",") if label]
    with sdk_client() as client:
        if collection is not None:
            cid = client.collection_id(collection)
            made = (
                client.update_dataset_version_from_collection(
                    version_of, cid, _split(split), chosen, query=query
                )
                if version_of is not None
                else client.create_dataset_from_collection(
                    name, cid, _split(split), chosen, query=query
                )
            )
        else:
            assert datalake is not None
            made = (
                client.update_dataset_version_from_datalake(
                    version_of, _split(split), chosen, item_type=datalake, query=query
                )
                if version_of is not None
                else client.create_dataset_from_datalake(
                    name, _split(split), chosen, item_type=datalake, query=query
                )
            )
    typer.echo(json.dumps(made, indent=1))


@datasets_app.command("show")
def datasets_show(version_id: Annotated[int, typer.Argument(help="A version id.")]) -> None:
    """Print a dataset version: its counts, splits and labels."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        typer.echo(json.dumps(client.get_dataset_version(version_id), indent=1))


@datasets_app.command("delete")
def datasets_delete(version_id: Annotated[int, typer.Argument(help="A version id.")]) -> None:
    """Delete a dataset version (and the dataset, when it was its last)."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        client.delete_dataset_version(version_id)
    typer.echo(f"deleted dataset version {version_id}")


@datasets_app.command("download")
def datasets_download(
    version_id: Annotated[int, typer.Argument(help="A version id.")],
    format: Annotated[str, typer.Option(help="coco, yolo, voc, label_studio, metalake_json, ...")],
    out: Annotated[Path | None, typer.Option(file_okay=False, help="Folder to write.")] = None,
    media: Annotated[bool, typer.Option(help="Copy the images too.")] = True,
) -> None:
    """Write a dataset version in a format, split-aware."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        report = client.download_dataset(version_id, format, out, media)
    typer.echo(json.dumps(report, indent=1))


def register_export_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("export")(export)
    app.add_typer(datasets_app, name="datasets")
