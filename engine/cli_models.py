"""`metalake models register | list | show | delete | install-defaults`.

register/list/show/delete go through the SDK (METALAKE_URL / METALAKE_API_KEY, else the engine of
`metalake up`); install-defaults writes to the database and the bundle store directly, like
`metalake keys`, because it installs the system's own models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

models_app = typer.Typer(
    help="Model registry: register bundles (docs/bundles.md), list, show, delete, and install "
    "the system default models.",
    no_args_is_help=True,
)

NameOption = Annotated[str, typer.Option("--name", "-n", help="The model's name.")]
ApplicationOption = Annotated[
    str,
    typer.Option(
        "--application", "-a", help="autotagging (or auto_tagging), auto_annotation or embedding."
    ),
]


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@models_app.command("register")
def register(
    path: Annotated[str, typer.Argument(help="The bundle folder, or a .tar.gz of it.")],
    name: NameOption,
    application: ApplicationOption,
) -> None:
    """Register a bundle as model NAME (a new version if NAME exists)."""
    from contextlib import closing

    from sdk import Client

    with closing(Client()) as client:
        version = client.register_model(path, name, application)
    typer.echo(
        f"registered {version['reference']} ({version['application']}, "
        f"{_size(version['size_bytes'])}, sha256 {version['sha256'][:12]})"
    )


@models_app.command("list")
def list_(
    application: Annotated[
        str | None, typer.Option("--application", "-a", help="Only models of this application.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered models: name, application, latest version, system default."""
    from contextlib import closing

    from sdk import Client

    with closing(Client()) as client:
        models = client.list_models(application)
    if as_json:
        typer.echo(json.dumps(models, indent=2))
        return
    typer.echo(f"{'name':<32} {'application':<16} {'latest':>6}  {'default':<7} created")
    for model in models:
        default = "yes" if model["is_system_default"] else ""
        typer.echo(
            f"{model['name']:<32} {model['application']:<16} "
            f"{model['latest_version']:>6}  {default:<7} "
            f"{model['created_at'][:16].replace('T', ' ')}"
        )
    typer.echo(f"{len(models)} model{'s' if len(models) != 1 else ''}")


@models_app.command("show")
def show(
    reference: Annotated[
        str, typer.Argument(metavar="NAME[@N]", help="A model, or one version of it.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's versions and one version in full (the latest, or NAME@N)."""
    from contextlib import closing

    from sdk import Client

    with closing(Client()) as client:
        model = client.get_model(reference)
    if as_json:
        typer.echo(json.dumps(model, indent=2))
        return
    for line in describe(model):
        typer.echo(line)


def describe(model: dict[str, Any]) -> list[str]:
    version = model["version"]
    labels = version.get("label_list")
    label_text = (
        "-"
        if not labels
        else (f"{len(labels)}: {', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''}")
    )
    lines = [
        f"{model['name']}  ({model['application']}"
        f"{', system default' if model['is_system_default'] else ''})",
        f"versions: {', '.join(str(v['version']) for v in model['versions'])}",
        "",
        f"{version['reference']}",
        f"  sha256         {version['sha256']}",
        f"  size           {_size(version['size_bytes'])}",
        f"  bundle         {version['bundle_uri']}",
        f"  labels         {label_text}",
        f"  weights        {version.get('weights_file') or '-'}",
        f"  registered     {version['created_at'][:19].replace('T', ' ')}",
    ]
    if model["application"] == "embedding":
        dim = version.get("embedding_dim") or "- (measured on first use)"
        lines.append(f"  embedding dim  {dim}")
    lines.append(f"  files ({len(version['files'])}):")
    lines.extend(f"    {f['path']}  {_size(f['size'])}" for f in version["files"][:50])
    if len(version["files"]) > 50:
        lines.append(f"    ... and {len(version['files']) - 50} more (--json lists them all)")
    return lines


@models_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The model (all its versions).")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete it even if it is a system model (install-defaults)."),
    ] = False,
) -> None:
    """Delete a model and all its versions (needs an admin key; refused while a job uses it,
    and for a system model without --force)."""
    from contextlib import closing

    from sdk import Client

    with closing(Client()) as client:
        client.delete_model(name, force=force)
    typer.echo(f"deleted model {name!r}")


@models_app.command("install-defaults")
def install_defaults(
    templates: Annotated[
        Path | None,
        typer.Option(help="The model_templates folder. Default: the one of this source tree."),
    ] = None,
    application: Annotated[
        list[str] | None,
        typer.Option("--application", "-a", help="Only this application's default (repeatable)."),
    ] = None,
) -> None:
    """Register the default templates (YOLOv8 autotagging, ResNet50 embedding, text-prompt
    auto-annotation) as the system defaults, with weights from METALAKE_WEIGHTS_DIR.
    Running it again adds a version only for a template whose bytes changed."""
    from engine.cli_common import reachable_database_url
    from engine.config import Settings
    from engine.db.session import make_engine, make_session_factory, session_scope
    from engine.registry.defaults import install_defaults as install
    from engine.registry.store import registry_storage

    settings = Settings()
    db_engine = make_engine(reachable_database_url(settings), pool_size=1)
    try:
        with session_scope(make_session_factory(db_engine)) as session:
            results = install(
                session=session,
                storage=registry_storage(settings),
                settings=settings,
                templates=templates,
                applications=application,
            )
    finally:
        db_engine.dispose()
    for result in results:
        state = "installed" if result.installed else "already installed"
        extra = f"; weights: {', '.join(result.weights)}" if result.weights else ""
        if result.missing_weights:
            extra += (
                f"; without {', '.join(result.missing_weights)} (not in "
                f"{settings.weights_path}: its model_fn falls back)"
            )
        typer.echo(f"{state} {result.name}@{result.version} ({result.application}{extra})")
