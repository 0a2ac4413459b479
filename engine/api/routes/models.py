"""The model registry: register a bundle version (streamed), list, show, delete."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from engine.api.deps import ReadKey, SessionDep, SettingsDep, require
from engine.api.routing import JSONRoute
from engine.api.schemas import ModelDetails, ModelPublic, ModelVersionPublic
from engine.auth import Principal
from engine.config import Settings
from engine.embeddings import spaces
from engine.errors import BundleTooLarge, InvalidInput
from engine.registry import store
from engine.registry.archive import ARCHIVE
from engine.registry.bundle import normalize_application
from engine.storage import Storage

router = APIRouter(tags=["models"], route_class=JSONRoute)


def _registry_storage(request: Request) -> Storage:
    """One bundle store per app, made on first use (`Settings.registry_root_url`)."""
    state = request.app.state
    if getattr(state, "registry_storage", None) is None:
        state.registry_storage = store.registry_storage(state.settings)
    storage: Storage = state.registry_storage
    return storage


RegistryStorageDep = Annotated[Storage, Depends(_registry_storage)]
# Admin only: a registered bundle is code the engine runs (in its model host, with the
# engine's data in reach), and a model's deletion takes its versions and vectors from every key.
RegisterKey = Annotated[
    Principal,
    require("admin", because="registering a model makes the engine run the bundle's code"),
]
DeleteKey = Annotated[
    Principal,
    require("admin", because="deleting a model removes its versions and embeddings for every key"),
]


def upload_limit(settings: Settings) -> int:
    """Largest archive accepted: the unpacked limit plus room for tar headers and gzip framing
    of incompressible files (the unpacked size is enforced while extracting)."""
    return settings.bundle_max_bytes + settings.bundle_max_bytes // 100 + (1 << 20)


async def _spool(request: Request, target: Path, limit: int) -> None:
    """Write the request body to `target` as it arrives, refusing past `limit` bytes."""
    too_large = BundleTooLarge(
        f"The bundle archive is larger than {limit:,} bytes (METALAKE_BUNDLE_MAX_BYTES plus "
        "packing overhead); leave unneeded files out or ask the engine's operator to raise "
        "the limit.",
        path=ARCHIVE,
        rule="too_large",
        limit=limit,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = 0
    with target.open("wb") as out:
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise too_large
                out.write(chunk)
        except ClientDisconnect as exc:
            raise InvalidInput(
                "The upload was interrupted before the bundle arrived; nothing was registered."
            ) from exc


@router.post(
    "/models/{name}/versions",
    response_model=ModelVersionPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def register_version(
    name: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: RegistryStorageDep,
    _: RegisterKey,
    application: Annotated[
        str, Query(description="autotagging (or auto_tagging), auto_annotation or embedding.")
    ],
) -> ModelVersionPublic:
    """Register the bundle `.tar.gz` in the body as the next version of model `name` (created
    if new). Validated before anything is stored; a refusal names the file and the rule."""
    store.check_name(name)
    kind = normalize_application(application)
    # End the key check's transaction before the upload: it updated the key's last_used_at, and
    # holding that row lock (and a connection) for minutes would stall every other request
    # made with the same key. Registration runs in a fresh transaction afterwards.
    await run_in_threadpool(session.commit)
    with tempfile.TemporaryDirectory(prefix="metalake-upload-") as work:
        archive = Path(work) / "bundle.tar.gz"
        await _spool(request, archive, upload_limit(settings))
        return await run_in_threadpool(
            lambda: store.register_bundle(
                session=session,
                storage=storage,
                settings=settings,
                name=name,
                application=kind,
                archive=archive,
            )
        )


@router.get("/models", response_model=list[ModelPublic])
def list_models(
    session: SessionDep, _: ReadKey, application: Annotated[str | None, Query()] = None
) -> list[ModelPublic]:
    """Registered models with their versions, by name."""
    return store.list_models(session=session, application=application)


@router.get("/models/{reference}", response_model=ModelDetails)
def get_model(reference: str, session: SessionDep, _: ReadKey) -> ModelDetails:
    """A model and its latest version (`name`) or a given one (`name@N`)."""
    return store.get_model(session=session, reference=reference)


@router.delete("/models/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(
    name: str,
    session: SessionDep,
    _: DeleteKey,
    force: Annotated[
        bool, Query(description="Delete a system model too (one `install-defaults` installed).")
    ] = False,
) -> None:
    """Delete a model and its versions (409 while a job uses it, or for a system model
    without `force`)."""
    spaces.delete_model(session=session, name=name, force=force)
