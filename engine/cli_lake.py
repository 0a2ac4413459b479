"""`metalake ingest` and `metalake query`: the SDK from a shell (same URL and key resolution as
`sdk.Client()`: METALAKE_URL / METALAKE_API_KEY, else the engine of `metalake up`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from engine.cli_common import parse_json_option


def register_lake_commands(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(query)


def ingest(
    path: Annotated[
        str, typer.Argument(help="A folder (recursive), a file, or s3://bucket/prefix.")
    ],
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="Collection name (created if new).")
    ],
    content_type: Annotated[str, typer.Option(help="image or video.")] = "image",
    meta: Annotated[
        str | None,
        typer.Option(help='Metadata for every file, a JSON object: \'{"camera": "cam 1"}\'.'),
    ] = None,
) -> None:
    """Register the files under PATH in a collection of the lake."""
    import warnings
    from contextlib import closing

    from sdk import Client

    metadata = parse_json_option(meta, "--meta")
    location = path if "://" in path else os.path.abspath(os.path.expanduser(path))
    with closing(Client()) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failures are listed below instead
        collection_id = client.upload_files_to_collection(
            location, content_type, collection, metadata
        )
        report = client.last_upload_report
    typer.echo(f"ingested {location} into collection {collection!r} (id {collection_id})")
    if report is not None:
        typer.echo(
            f"  added {report.added}, updated {report.updated}, "
            f"unchanged {report.unchanged}, failed {len(report.failed)}"
        )
        for failure in report.failed[:20]:
            typer.echo(f"  failed: {failure.path}: {failure.reason}", err=True)
        if len(report.failed) > 20:
            typer.echo(f"  ... and {len(report.failed) - 20} more failures", err=True)


def query(
    text: Annotated[
        str | None,
        typer.Argument(
            metavar="QUERY",
            help="e.g. 'annotation.label=Bird AND metadata.camera!=\"cam 2\"'; "
            "omit to list everything.",
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", help='JSON: {"annotation_types": ["human"], "from_date": "2024-01-01"}.'
        ),
    ] = None,
    collection_id: Annotated[int | None, typer.Option(help="Only this collection.")] = None,
    item_type: Annotated[str, typer.Option("--type", help="image or video.")] = "image",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Items to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
) -> None:
    """Search the lake with the query language and print the matching items."""
    from contextlib import closing

    from sdk import Client

    filters = parse_json_option(filter_, "--filter")
    with closing(Client()) as client:
        if collection_id is not None:
            result = client.get_item_list_from_collection(collection_id, text, filters, 0, limit)
        else:
            result = client.get_item_list_from_datalake(item_type, text, filters, 0, limit)
    items, total = _items_and_total(result)
    if as_json:
        typer.echo(json.dumps(items, indent=2, default=str))
        return
    for item in items:
        typer.echo(describe_item(item))
    shown = f"{len(items)} item{'s' if len(items) != 1 else ''}"
    if total is not None and total != len(items):
        shown += f" of {total}"
    elif total is None and len(items) == limit:
        shown += f" (the first {limit}; --limit shows more)"
    typer.echo(shown)


def _items_and_total(result: Any) -> tuple[list[dict[str, Any]], int | None]:
    """The SDK returns a list of item dicts (or a page with `items` and `total`)."""
    if isinstance(result, Mapping):
        items = list(result.get("items", []))
        total = result.get("total")
        return [_as_dict(i) for i in items], total if isinstance(total, int) else None
    if isinstance(result, Sequence):
        return [_as_dict(i) for i in result], None
    return [_as_dict(i) for i in getattr(result, "items", [])], getattr(result, "total", None)


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    return dict(dump(by_alias=True)) if callable(dump) else {"item": str(item)}


def describe_item(item: Mapping[str, Any]) -> str:
    """One readable line: id, unique name, size, metadata, tags, annotation labels."""
    parts = [f"{item.get('id', '?'):>6}", str(item.get("uniqueName") or item.get("name", "?"))]
    if item.get("width") and item.get("height"):
        parts.append(f"{item['width']}x{item['height']}")
    metadata = item.get("metadata") or item.get("meta_data")
    if isinstance(metadata, Mapping) and metadata:
        parts.append("meta " + json.dumps(metadata, default=str, ensure_ascii=False))
    tags = [_label(t, "name") for t in item.get("tags") or []]
    if tags:
        parts.append("tags " + ",".join(tags))
    labels = sorted({_label(a, "label") for a in item.get("annotations") or []})
    if labels:
        parts.append("annotations " + ",".join(labels))
    return "  ".join(parts)


def _label(value: Any, key: str) -> str:
    return str(value.get(key, value)) if isinstance(value, Mapping) else str(value)
