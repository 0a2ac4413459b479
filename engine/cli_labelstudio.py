"""`metalake labelstudio`: annotation projects in Label Studio from collections, and back."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from engine.cli_common import parse_json_option

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--labelstudio-url",
        help="Label Studio's URL (default: the engine's METALAKE_LABELSTUDIO_URL).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--labelstudio-token",
        envvar="LABEL_STUDIO_API_KEY",
        help="A Label Studio access token (default: the engine's METALAKE_LABELSTUDIO_TOKEN).",
    ),
]


def project(
    name: Annotated[str, typer.Argument(help="The Label Studio project's title.")],
    collection_id: Annotated[int, typer.Option(help="The collection whose images to label.")],
    query: Annotated[str, typer.Option(help="Narrow the files (the query language).")] = "",
    filter: Annotated[str | None, typer.Option(help="A JSON filter, as for items.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Only this model's labels become predictions.")
    ] = None,
    shape: Annotated[
        str, typer.Option(help="rectangle, or polygon to offer polygon labels too.")
    ] = "rectangle",
    labelstudio_url: UrlOption = None,
    labelstudio_token: TokenOption = None,
) -> None:
    """Make a Label Studio project of a collection's images, machine labels as predictions."""
    from engine.cli_jobs import sdk_client

    if shape not in ("rectangle", "polygon"):
        raise typer.BadParameter("use rectangle or polygon.", param_hint="--shape")
    default_shape: Literal["rectangle", "polygon"] = (
        "polygon" if shape == "polygon" else "rectangle"
    )
    with sdk_client() as client:
        made = client.create_annotation_project_from_collection(
            name,
            collection_id,
            query,
            parse_json_option(filter, "--filter") or {},
            default_shape_type=default_shape,
            model_name=model,
            labelstudio_url=labelstudio_url,
            labelstudio_token=labelstudio_token,
        )
    typer.echo(json.dumps(made, indent=1))


def download(
    project_id: Annotated[int, typer.Argument(help="The Label Studio project's id.")],
    labelstudio_url: UrlOption = None,
    labelstudio_token: TokenOption = None,
) -> None:
    """Bring a project's human annotations into the lake (again: replaces the last download)."""
    from engine.cli_jobs import sdk_client

    with sdk_client() as client:
        report = client.download_project_annotations(
            project_id, labelstudio_url=labelstudio_url, labelstudio_token=labelstudio_token
        )
    typer.echo(json.dumps(report, indent=1))


def register_labelstudio_commands(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    group = typer.Typer(
        help="Label Studio: projects from collections, human annotations back.",
        no_args_is_help=True,
    )
    group.command("project")(project)
    group.command("download")(download)
    app.add_typer(group, name="labelstudio")
