"""Analysis jobs and similarity search from a shell: `metalake autotag | autotag-lake | annotate |
annotate-lake | embed | embed-lake | similar` and `metalake jobs list | show | wait | cancel |
retry | resume | accept | reject`.

Every command goes through the SDK (METALAKE_URL / METALAKE_API_KEY, else the engine of
`metalake up`). SDK errors end the command with one `error:` line and exit code 1 here (not only
in `main`), so the commands behave the same when invoked in-process; malformed option values are
usage errors (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli_common import echo_err, parse_json_option
from sdk.vocabulary import JobStatus

if TYPE_CHECKING:
    from sdk import Client

jobs_app = typer.Typer(
    help="Analysis jobs: list, show, wait for, cancel, retry failed items, resume, and "
    "accept or reject a preview job's proposed annotations.",
    no_args_is_help=True,
)

FAILED_EXIT_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)


def register_job_commands(app: typer.Typer) -> None:
    app.command("autotag")(autotag)
    app.command("autotag-lake")(autotag_lake)
    app.command("annotate")(annotate)
    app.command("annotate-lake")(annotate_lake)
    app.command("embed")(embed)
    app.command("embed-lake")(embed_lake)
    app.command("similar")(similar)
    app.add_typer(jobs_app, name="jobs")


@contextmanager
def sdk_client() -> Iterator[Client]:
    """An SDK client; its errors become one `error:` line and exit code 1."""
    from sdk import Client
    from sdk.errors import MetaLakeError

    try:
        with Client() as client:
            yield client
    except MetaLakeError as exc:
        echo_err(str(exc))
        raise typer.Exit(1) from None


# -- option parsing -------------------------------------------------------------------------------
def parse_resolution(value: str) -> tuple[int, int]:
    """`300x300` (or `300,300`) → (300, 300)."""
    parts = value.lower().replace(",", "x").split("x")
    try:
        width, height = (int(p.strip()) for p in parts)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not WIDTHxHEIGHT, e.g. 300x300", param_hint="--resolution"
        ) from None
    if width < 1 or height < 1:
        raise typer.BadParameter(
            f"{value!r}: width and height must be positive", param_hint="--resolution"
        )
    return width, height


def parse_prompts(values: list[str] | None) -> list[dict[str, str]] | None:
    """`label=description` (or just `label`, prompted as itself) → prompt entries."""
    if not values:
        return None
    prompts = []
    for value in values:
        label, sep, description = value.partition("=")
        label, description = label.strip(), description.strip()
        if not label or (sep and not description):
            raise typer.BadParameter(
                f"{value!r} is not LABEL or LABEL=DESCRIPTION", param_hint="--prompt"
            )
        prompts.append({"label": label, "description": description or label})
    return prompts


def read_vector_file(path: Path) -> list[float]:
    """A JSON file holding a list of numbers (or an object with `embeddings` / `vector`)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror or exc}", param_hint="--vector-file"
        ) from None
    except ValueError as exc:
        raise typer.BadParameter(
            f"{path} is not valid JSON: {exc}", param_hint="--vector-file"
        ) from None
    if isinstance(data, Mapping):
        data = data.get("embeddings", data.get("vector"))
    if (
        not isinstance(data, list)
        or not data
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in data)
    ):
        raise typer.BadParameter(
            f'{path} must hold a JSON list of numbers (or an object with an "embeddings" list)',
            param_hint="--vector-file",
        )
    return [float(v) for v in data]


def _collection(value: str) -> int | str:
    return int(value) if value.strip().isdigit() else value


# -- output ---------------------------------------------------------------------------------------
def job_line(job: Mapping[str, Any]) -> str:
    """One readable line: id, kind, status, progress, model, platform, created."""
    progress = f"{job['done'] + job['failed']}/{job['total']}"
    parts = [
        f"{job['job_id']:>6}",
        f"{job['kind']:<16}",
        f"{job['status']:<16}",
        f"{progress:>11}",
        f"failed {job['failed']:<5}",
        f"{job.get('model') or '-':<24}",
        f"{job['platform']:<6}",
        _time(job.get("created_at")),
    ]
    return "  ".join(parts).rstrip()


def job_lines(job: Mapping[str, Any]) -> list[str]:
    lines = [
        f"job {job['job_id']}  {job['kind']}  {job['status']}"
        f"{'  (cancel requested)' if job.get('cancel_requested') else ''}",
        f"  model        {job.get('model') or '-'}",
        f"  platform     {job['platform']}",
        f"  collection   {'-' if job.get('collection_id') is None else job['collection_id']}",
        f"  files        {job['total']} total, {job['done']} done, {job['failed']} failed",
        f"  created      {_time(job.get('created_at'))}",
        f"  started      {_time(job.get('started_at'))}",
        f"  finished     {_time(job.get('finished_at'))}",
    ]
    params = job.get("params") or {}
    if params:
        lines.append(f"  params       {json.dumps(params, default=str, sort_keys=True)}")
    if job.get("error"):
        lines.append(f"  error        {job['error']}")
    errors = job.get("errors") or []
    if errors:
        lines.append(f"  failed items ({len(errors)}{'+' if len(errors) >= 100 else ''}):")
        lines.extend(f"    {e['unique_name']}: {e['error']}" for e in errors)
    return lines


def _time(value: Any) -> str:
    if value is None:
        return "-"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:19].replace("T", " ")


def _submitted(
    client: Client, submitted: Mapping[str, Any], wait: bool, timeout: float | None
) -> None:
    job_id = submitted["job_id"]
    total = submitted["total"]
    count = f", {total} file{'s' if total != 1 else ''}"  # counted when the job was submitted
    typer.echo(f"submitted job {job_id} ({submitted['status']}{count})")
    if not wait:
        typer.echo(f"follow it with `metalake jobs wait {job_id}` or `metalake jobs show {job_id}`")
        return
    _finish(client.wait_for_job(job_id, timeout))


def _finish(job: Mapping[str, Any]) -> None:
    """Print a finished job; exit 1 if it failed or was cancelled."""
    for line in job_lines(job):
        typer.echo(line)
    if job["status"] in FAILED_EXIT_STATUSES:
        raise typer.Exit(1)


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


# -- shared options -------------------------------------------------------------------------------
CollectionArg = Annotated[
    str, typer.Argument(metavar="COLLECTION_ID", help="The collection's id (or name).")
]
ContentTypeArg = Annotated[str, typer.Argument(metavar="CONTENT_TYPE", help="image or video.")]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Model name (or NAME@N); default: the system's.")
]
ResolutionOpt = Annotated[
    str,
    typer.Option("--resolution", metavar="WxH", help="Input resolution the images are resized to."),
]
ConfidenceOpt = Annotated[
    float, typer.Option("--confidence", min=0.0, max=1.0, help="Keep detections at or above this.")
]
QueryOpt = Annotated[
    str | None, typer.Option("--query", "-q", help="Only files matching this lake query.")
]
FilterOpt = Annotated[
    str | None,
    typer.Option(
        "--filter", help='JSON: {"annotation_types": ["human"], "from_date": "2024-01-01"}.'
    ),
]
PlatformOpt = Annotated[
    str, typer.Option("--platform", help="local, aws, or use_env (METALAKE_INFERENCE_PLATFORM).")
]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait for the job, with a progress bar.")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.0, help="With --wait: give up waiting after this many seconds."
    ),
]
PromptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--prompt",
        "-p",
        metavar="LABEL[=DESCRIPTION]",
        help="A label to annotate, prompted with DESCRIPTION (default: the label). Repeatable.",
    ),
]
AnnotationTypeOpt = Annotated[str, typer.Option("--type", help="polygon or box.")]
PreviewOpt = Annotated[
    bool,
    typer.Option(
        "--preview", help="Propose the annotations (accept or reject them with `metalake jobs`)."
    ),
]


def _annotation_type(value: str) -> str:
    if value not in ("polygon", "box"):
        raise typer.BadParameter(f"{value!r} is not polygon or box", param_hint="--type")
    return value


# -- analysis commands ----------------------------------------------------------------------------
def autotag(
    collection_id: CollectionArg,
    model: ModelOpt = "default",
    resolution: ResolutionOpt = "300x300",
    confidence: ConfidenceOpt = 0.5,
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    platform: PlatformOpt = "use_env",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Autotag a collection's files (tags and machine boxes) with an autotagging model."""
    size, filters = parse_resolution(resolution), parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        submitted = client.auto_tag_collection(
            _collection(collection_id), model, size, confidence, query, filters, platform
        )
        _submitted(client, submitted, wait, timeout)


def autotag_lake(
    content_type: ContentTypeArg,
    model: ModelOpt = "default",
    resolution: ResolutionOpt = "300x300",
    confidence: ConfidenceOpt = 0.5,
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    platform: PlatformOpt = "use_env",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Autotag every CONTENT_TYPE file of the lake (narrowed by --query / --filter)."""
    size, filters = parse_resolution(resolution), parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        submitted = client.generate_auto_tags_to_metalake(
            content_type, model, size, confidence, query, filters, platform
        )
        _submitted(client, submitted, wait, timeout)


def annotate(
    collection_id: CollectionArg,
    prompt: PromptOpt = None,
    model: ModelOpt = "default",
    annotation_type: AnnotationTypeOpt = "polygon",
    confidence: ConfidenceOpt = 0.5,
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    platform: PlatformOpt = "use_env",
    preview: PreviewOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Auto-annotate the prompted labels (polygons or boxes) on a collection's files."""
    prompts, kind = parse_prompts(prompt), _annotation_type(annotation_type)
    filters = parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        submitted = client.auto_annotate_collection(
            _collection(collection_id),
            model,
            list(prompts) if prompts else None,
            kind,
            confidence,
            query,
            filters,
            platform,
            preview,
        )
        _submitted(client, submitted, wait, timeout)


def annotate_lake(
    content_type: ContentTypeArg,
    prompt: PromptOpt = None,
    model: ModelOpt = "default",
    annotation_type: AnnotationTypeOpt = "polygon",
    confidence: ConfidenceOpt = 0.5,
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    platform: PlatformOpt = "use_env",
    preview: PreviewOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Auto-annotate the prompted labels on every CONTENT_TYPE file of the lake."""
    prompts, kind = parse_prompts(prompt), _annotation_type(annotation_type)
    filters = parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        submitted = client.generate_auto_annotations_to_metalake(
            content_type,
            model,
            list(prompts) if prompts else None,
            kind,
            confidence,
            query,
            filters,
            platform,
            preview,
        )
        _submitted(client, submitted, wait, timeout)


def embed(
    collection_id: CollectionArg,
    model: ModelOpt = "default",
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    platform: PlatformOpt = "use_env",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Compute one embedding per selected file of a collection (default: ResNet50)."""
    filters = parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        submitted = client.generate_embeddings_for_collection(
            _collection(collection_id), model, query, filters, platform
        )
        _submitted(client, submitted, wait, timeout)


def embed_lake(
    content_type: ContentTypeArg,
    model: ModelOpt = "default",
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    platform: PlatformOpt = "use_env",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Compute one embedding per selected CONTENT_TYPE file of the lake."""
    filters = parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        submitted = client.generate_embeddings_to_metalake(
            content_type, model, query, filters, platform
        )
        _submitted(client, submitted, wait, timeout)


def similar(
    name: Annotated[
        str | None,
        typer.Option(
            "--name", "-n", metavar="UNIQUE_NAME", help="Search with this file's stored vector."
        ),
    ] = None,
    vector_file: Annotated[
        Path | None,
        typer.Option(
            "--vector-file", metavar="FILE.json", help="Search with this vector (a JSON list)."
        ),
    ] = None,
    model: ModelOpt = "default",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours to return.")] = 10,
    collection_id: Annotated[
        str | None, typer.Option("--collection-id", help="Only among this collection's files.")
    ] = None,
    query: QueryOpt = None,
    filter_: FilterOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The K files most similar (cosine) to a file or to a vector, best first."""
    if (name is None) == (vector_file is None):
        raise typer.BadParameter(
            "give exactly one of --name or --vector-file", param_hint="--name / --vector-file"
        )
    vector = read_vector_file(vector_file) if vector_file is not None else None
    filters = parse_json_option(filter_, "--filter")
    with sdk_client() as client:
        items = client.get_similar_items(
            name,
            vector,
            model,
            k,
            _collection(collection_id) if collection_id is not None else None,
            query,
            filters,
        )
    if as_json:
        _json(items)
        return
    for item in items:
        typer.echo(f"{item['score']:.4f}  {item['unique_name']}")
    typer.echo(f"{len(items)} item{'s' if len(items) != 1 else ''}")


# -- jobs -----------------------------------------------------------------------------------------
JobIdArg = Annotated[int, typer.Argument(metavar="JOB_ID", help="The job's id.")]
AsJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@jobs_app.command("list")
def list_(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only jobs in this status (queued, running, succeeded, partially_failed, failed, "
            "cancelled)."
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Only jobs of this kind (autotagging, auto_annotation, embedding, "
            "embedding_import)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Jobs to show.")] = 50,
    as_json: AsJsonOpt = False,
) -> None:
    """List jobs: id, kind, status, progress, model, platform, created."""
    with sdk_client() as client:
        jobs = client.list_jobs(status, kind, limit)
    if as_json:
        _json(jobs)
        return
    for job in jobs:
        typer.echo(job_line(job))
    typer.echo(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}")


@jobs_app.command("show")
def show(job_id: JobIdArg, as_json: AsJsonOpt = False) -> None:
    """Show a job: status, counters, parameters and its failed items with their reasons."""
    with sdk_client() as client:
        job = client.get_job(job_id)
    if as_json:
        _json(job)
        return
    for line in job_lines(job):
        typer.echo(line)


@jobs_app.command("wait")
def wait_(
    job_id: JobIdArg,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.0, help="Give up after this many seconds (the job goes on)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Wait for a job to finish and show it; exit 1 if it failed or was cancelled."""
    with sdk_client() as client:
        job = client.wait_for_job(job_id, timeout, progress=progress)
    _finish(job)


@jobs_app.command("cancel")
def cancel(job_id: JobIdArg) -> None:
    """Cancel a job: chunks not yet started do nothing."""
    with sdk_client() as client:
        job = client.cancel_job(job_id)
    typer.echo(job_line(job))


@jobs_app.command("retry")
def retry(job_id: JobIdArg) -> None:
    """Run a finished job's failed items again (only those)."""
    with sdk_client() as client:
        job = client.retry_failed(job_id)
    typer.echo(job_line(job))


@jobs_app.command("resume")
def resume(job_id: JobIdArg) -> None:
    """Send again the work an unfinished job still has (after the broker lost its queue)."""
    with sdk_client() as client:
        job = client.resume_job(job_id)
    typer.echo(job_line(job))


NamesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--name", "-n", metavar="UNIQUE_NAME", help="Only this file's proposals. Repeatable."
    ),
]


@jobs_app.command("accept")
def accept(job_id: JobIdArg, name: NamesOpt = None) -> None:
    """Apply a preview job's proposed annotations (all, or those of the named files)."""
    with sdk_client() as client:
        report = client.accept_proposals(job_id, name or None)
    typer.echo(f"job {report['job_id']}: accepted {report['annotations']} annotations")


@jobs_app.command("reject")
def reject(job_id: JobIdArg, name: NamesOpt = None) -> None:
    """Delete a preview job's proposed annotations (all, or those of the named files)."""
    with sdk_client() as client:
        report = client.reject_proposals(job_id, name or None)
    typer.echo(f"job {report['job_id']}: rejected {report['annotations']} annotations")
