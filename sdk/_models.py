"""Model registry calls: register a bundle (section 7.1 of the SDK manual), list, show, delete.

A folder is packed into a temporary `.tar.gz` on disk (`sdk.packing`) and both are streamed
to the engine in chunks: a bundle of hundreds of MB is never held in memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from sdk._base import BaseClient, either
from sdk.errors import BadRequest
from sdk.packing import pack_bundle
from sdk.schemas import (
    APPLICATION_SPELLINGS,
    Application,
    ModelDetails,
    ModelPublic,
    ModelVersionPublic,
)

# The engine validates (unpacks, parses, hashes) and stores the bundle before it answers.
REGISTER_TIMEOUT = httpx.Timeout(30.0, read=3600.0, write=3600.0)
PROGRESS_MIN_BYTES = 16 << 20
CHUNK = 1 << 20


def _application(value: str | None) -> Application:
    application = APPLICATION_SPELLINGS.get(str(value).strip().lower()) if value else None
    if application is None:
        accepted = ", ".join(repr(s) for s in APPLICATION_SPELLINGS)
        raise BadRequest(
            f"Unknown application {value!r}: use one of {accepted}.", code="unknown_application"
        )
    return application


def _model_name(model_id: str | None, model_name: str | None) -> str:
    if model_id and model_name and model_id != model_name:
        raise BadRequest(
            f"model_id {model_id!r} and model_name {model_name!r} differ; they are "
            "two names for one argument: pass one.",
            code="invalid_input",
        )
    name = model_id or model_name
    if not name:
        raise BadRequest(
            "Name the model: register_model(path, model_id, application).", code="invalid_input"
        )
    return name


def _chunks(handle: IO[bytes], bar: Any) -> Iterator[bytes]:
    """The file in 1 MiB chunks, advancing the progress bar."""
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        bar.update(len(chunk))
        yield chunk


class ModelCalls(BaseClient):
    def register_model(
        self,
        path: str | os.PathLike[str] | None = None,
        model_id: str | None = None,
        application: str | None = None,
        *,
        model_name: str | None = None,
        input_model_path: str | os.PathLike[str] | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Register the bundle at `path` (a folder in the bundle layout, or a `.tar.gz` of one)
        as model `model_id` (alias `model_name`) for `application`: `autotagging` (or
        `auto_tagging`), `auto_annotation` or `embedding`.

        Needs an admin key: the engine runs the bundle's code. Registering an existing name
        adds its next version. The engine checks the bundle before storing anything and
        refuses it naming the file and the rule broken (see docs/bundles.md). LayerNext's
        spellings `input_model_path=` and `task=` are accepted for `path` and `application`.
        Returns the new version: `name`, `version`, `reference` (`name@N`), `sha256`,
        `label_list`, `embedding_dim`, `files`, ...
        """
        name = _model_name(model_id, model_name)
        kind = _application(either(application, task, ("application", "task")))
        path = either(path, input_model_path, ("path", "input_model_path"))
        if path is None:
            raise BadRequest(
                "Name the bundle: register_model(path, model_id, application).",
                code="invalid_input",
            )
        source = Path(path).expanduser()
        if not source.exists():
            where = "" if source.is_absolute() else f" (relative to {Path.cwd()})"
            raise BadRequest(
                f"{str(path)!r} does not exist{where}; pass the bundle folder or a .tar.gz of it.",
                code="invalid_path",
            )
        if source.is_dir():
            with tempfile.TemporaryDirectory(prefix="metalake-bundle-") as work:
                archive = Path(work) / "bundle.tar.gz"
                pack_bundle(source, archive)
                return self._upload_bundle(archive, name, kind)
        return self._upload_bundle(source, name, kind)

    def _upload_bundle(self, archive: Path, name: str, application: Application) -> dict[str, Any]:
        from tqdm.auto import tqdm

        size = archive.stat().st_size
        with (
            archive.open("rb") as handle,
            tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                desc=f"Uploading {name}",
                disable=size < PROGRESS_MIN_BYTES,
            ) as bar,
        ):
            body = self._post(
                f"/models/{quote(name, safe='')}/versions",
                params={"application": application},
                content=_chunks(handle, bar),  # streamed: Content-Length set below
                headers={"Content-Type": "application/gzip", "Content-Length": str(size)},
                timeout=REGISTER_TIMEOUT,
            )
        return ModelVersionPublic.model_validate(body).model_dump(mode="json")

    def list_models(self, application: str | None = None) -> list[dict[str, Any]]:
        """Registered models (name, application, is_system_default, latest_version, versions),
        optionally of one application."""
        params = {"application": _application(application)} if application else None
        body = self._get("/models", params=params)
        return [ModelPublic.model_validate(m).model_dump(mode="json") for m in body]

    def get_model(self, name: str) -> dict[str, Any]:
        """A model and its versions, with `version` holding its latest version in full;
        `name@N` shows version N instead."""
        body = self._get(f"/models/{quote(name, safe='@')}")
        return ModelDetails.model_validate(body).model_dump(mode="json")

    def delete_model(self, name: str, *, force: bool = False) -> None:
        """Delete a model and all its versions (needs an admin key; refused with Conflict
        while a job uses it, and for a system model of `install-defaults` unless `force`)."""
        self._delete(f"/models/{quote(name, safe='')}", params={"force": "true"} if force else None)
