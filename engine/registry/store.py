"""The model registry service: register bundle versions, resolve references, list, delete.

A reference is `name` (its latest version), `name@N` (version N), or `default` / None (the
system default of the application). Bundles are stored content-addressed
(`<registry>/bundles/<sha256[:2]>/<sha256>.tar.gz`) and versions are immutable.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from engine.config import Settings
from engine.db.models import Model, ModelVersion
from engine.errors import (
    InvalidInput,
    InvalidModelName,
    ModelApplicationConflict,
    ModelInUse,
    ModelNotFound,
    SystemModelProtected,
)
from engine.ids import MAX_ID, parse_id
from engine.registry.archive import Limits, extract_bundle, pack_bundle
from engine.registry.bundle import normalize_application, validate_bundle
from engine.storage import Storage
from engine.textformats import excerpt, limits_of
from sdk.schemas import (
    Application,
    BundleFile,
    JobStatus,
    ModelDetails,
    ModelPublic,
    ModelVersionPublic,
    ModelVersionSummary,
)

NAMESPACE = "bundles"
DEFAULT = "default"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
HINT = (
    "register one with client.register_model(path, name, application) or install the "
    "system defaults with `metalake models install-defaults`"
)


def registry_storage(settings: Settings) -> Storage:
    """The object store bundles are written to (`Settings.registry_root_url`)."""
    return Storage(
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        managed_url=settings.registry_root_url,
    )


def check_name(name: str, *, system: bool = False) -> str:
    """A model name: letters, digits, `.`, `_`, `-`; `default` and `default-*` are the system's."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidModelName(
            f"Invalid model name {excerpt(name)!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (`@N` selects a version and is not part of the name).",
            name=name,
        )
    if not system and (name == DEFAULT or name.startswith(DEFAULT + "-")):
        raise InvalidModelName(
            f"The name {excerpt(name)!r} is reserved for the system default models (`metalake "
            "models install-defaults`); choose another name.",
            name=name,
        )
    return name


def parse_reference(reference: str) -> tuple[str, int | None]:
    """`name` -> (name, None); `name@N` -> (name, N)."""
    name, at, version = reference.strip().partition("@")
    if not at:
        return name, None
    number = parse_id(version)
    if number is None:
        raise InvalidInput(
            f"Invalid model reference {excerpt(reference)!r}: write `name` for "
            "the latest version or `name@N` (N = 1, 2, ... in the digits 0-9, "
            f"at most {MAX_ID}) for a given one.",
            reference=reference,
        )
    return name, number


# -- register -------------------------------------------------------------------------------------
def register_bundle(
    *,
    session: Session,
    storage: Storage,
    settings: Settings,
    name: str,
    application: str,
    archive: Path,
    system: bool = False,
) -> ModelVersionPublic:
    """Validate the `.tar.gz` at `archive` and add it as the next version of model `name`.

    All or nothing: every check runs before anything is stored or inserted. Should the insert
    fail after the bundle was stored, the stored object is harmless: it is content-addressed, so
    it is simply reused by the next registration of the same bytes.
    """
    check_name(name, system=system)
    kind = normalize_application(application)
    with tempfile.TemporaryDirectory(prefix="metalake-bundle-") as work:
        extracted = Path(work) / "bundle"
        root = extract_bundle(
            archive,
            extracted,
            Limits(max_bytes=settings.bundle_max_bytes, max_files=settings.bundle_max_files),
        )
        info = validate_bundle(root, kind, limits_of(settings))
        if root != extracted:  # the layout was wrapped in one folder: store it unwrapped
            archive = Path(work) / "bundle.tar.gz"
            pack_bundle(root, archive)
        model = _lock_or_create(session, name, kind, system=system)
        with archive.open("rb") as stream:
            uri, sha256, size = storage.put_content_addressed(
                stream, namespace=NAMESPACE, suffix=".tar.gz"
            )
    latest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
    )
    version = ModelVersion(
        model_id=model.id,
        version=(latest or 0) + 1,
        bundle_uri=uri,
        sha256=sha256,
        size_bytes=size,
        label_list=info.label_list,
        embedding_dim=info.embedding_dim,
        weights_file=info.weights_file,
        manifest=info.manifest,
    )
    session.add(version)
    session.flush()
    session.refresh(version)
    return version_public(model, version)


def _lock_or_create(
    session: Session, name: str, application: Application, *, system: bool = False
) -> Model:
    """The model row, created if new, locked so concurrent registrations number in turn."""
    session.execute(
        insert(Model)
        .values(name=name, application=application, is_system=system)
        .on_conflict_do_nothing(index_elements=[Model.name])
    )
    model = session.scalars(select(Model).where(Model.name == name).with_for_update()).one()
    if model.application != application:
        raise ModelApplicationConflict(
            f"A model named {name!r} already exists for {model.application}; a new version "
            f"must be for the same application (not {application}). Register the bundle under "
            "another name.",
            name=name,
            application=model.application,
        )
    return model


# -- read -----------------------------------------------------------------------------------------
def version_public(model: Model, version: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic(
        name=model.name,
        application=normalize_application(model.application),
        version=version.version,
        reference=f"{model.name}@{version.version}",
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        bundle_uri=version.bundle_uri,
        label_list=version.label_list,
        embedding_dim=version.embedding_dim,
        weights_file=version.weights_file,
        created_at=version.created_at,
        files=[BundleFile.model_validate(f) for f in version.manifest],
    )


def _public(model: Model) -> ModelPublic:
    return ModelPublic(
        id=model.id,
        name=model.name,
        application=normalize_application(model.application),
        is_system_default=model.is_system_default,
        is_system=model.is_system,
        created_at=model.created_at,
        latest_version=max((v.version for v in model.versions), default=0),
        versions=[
            ModelVersionSummary(
                version=v.version, sha256=v.sha256, size_bytes=v.size_bytes, created_at=v.created_at
            )
            for v in model.versions
        ],
    )


def list_models(*, session: Session, application: str | None = None) -> list[ModelPublic]:
    """Registered models (with at least one version), by name; optionally of one application."""
    query = select(Model).options(selectinload(Model.versions)).order_by(Model.name)
    if application is not None:
        query = query.where(Model.application == normalize_application(application))
    return [_public(m) for m in session.scalars(query) if m.versions]


def get_model(*, session: Session, reference: str) -> ModelDetails:
    """A model with its versions, and in full its latest version (or `name@N`'s)."""
    name, number = parse_reference(reference)
    model = _model(session, name)
    version = _version(model, number)
    return ModelDetails(**_public(model).model_dump(), version=version_public(model, version))


def _model(session: Session, name: str, application: str | None = None) -> Model:
    model = session.scalars(
        select(Model).where(Model.name == name).options(selectinload(Model.versions))
    ).one_or_none()
    if model is None or not model.versions:
        scope = f"{application} " if application else ""
        raise ModelNotFound(
            f"No {scope}model named {excerpt(name)!r}. {_available(session, application)}",
            name=name,
        )
    return model


def _version(model: Model, number: int | None) -> ModelVersion:
    if number is None:
        return model.versions[-1]
    for version in model.versions:
        if version.version == number:
            return version
    numbers = ", ".join(str(v.version) for v in model.versions)
    raise ModelNotFound(
        f"Model {model.name!r} has no version {number}; its versions: {numbers}.",
        name=model.name,
        version=number,
    )


def _available(session: Session, application: str | None) -> str:
    query = select(Model.name).where(Model.versions.any()).order_by(Model.name)
    if application:
        query = query.where(Model.application == application)
    names = list(session.scalars(query))
    scope = f"{application} " if application else ""
    if not names:
        return f"No {scope}models are registered yet: {HINT}."
    return f"Registered {scope}models: {', '.join(names)}."


def resolve_version(session: Session, reference: str | None, application: str) -> ModelVersion:
    """The version a job runs: `name`, `name@N`, or `default`/None for the system default.

    Raises `ModelNotFound` (404) naming the models available for the application.
    """
    kind = normalize_application(application)
    if reference is None or reference.strip() in ("", DEFAULT):
        model = session.scalars(
            select(Model)
            .where(Model.application == kind, Model.is_system_default)
            .options(selectinload(Model.versions))
        ).one_or_none()
        if model is None or not model.versions:
            raise ModelNotFound(
                f"There is no system default {kind} model yet: install it "
                "with `metalake models install-defaults`, or pass a model "
                f"name. {_available(session, kind)}",
                application=kind,
            )
        return model.versions[-1]
    name, number = parse_reference(reference)
    model = _model(session, name, kind)
    if model.application != kind:
        raise ModelNotFound(
            f"{excerpt(name)!r} is an {model.application} model, not {kind}. "
            f"{_available(session, kind)}",
            name=name,
            application=kind,
        )
    return _version(model, number)


# -- delete ---------------------------------------------------------------------------------------
def _in_use(session: Session, model_id: int) -> list[str]:
    """Ids of unfinished (queued or running) jobs using any version of the model."""
    from engine.db.jobs import Job

    rows = session.scalars(
        select(Job.id)
        .join(ModelVersion, ModelVersion.id == Job.model_version_id)
        .where(
            ModelVersion.model_id == model_id, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))
        )
        .order_by(Job.id)
    )
    return [str(job_id) for job_id in rows]


def model_to_delete(*, session: Session, name: str, force: bool = False) -> Model:
    """The model `delete_model` deletes, once it passes its checks: raises `InvalidInput` for
    `name@N`, `ModelNotFound`, `SystemModelProtected` for a system model without `force` and
    `ModelInUse` while a job uses it."""
    model_name, number = parse_reference(name)
    if number is not None:
        raise InvalidInput(
            f"Versions are immutable and deleted with their model: delete "
            f"{model_name!r} (all its versions), not {excerpt(name)!r}."
        )
    model = _model(session, model_name)
    if model.is_system and not force:
        raise SystemModelProtected(
            f"{model_name!r} is a system model (installed by `metalake models "
            "install-defaults`); it is kept unless deletion is forced: "
            f"DELETE /models/{model_name}?force=true, client.delete_model({model_name!r}, "
            f"force=True) or `metalake models delete {model_name} --force`, with an admin key.",
            name=model_name,
        )
    jobs = _in_use(session, model.id)
    if jobs:
        raise ModelInUse(
            f"Model {model_name!r} is used by unfinished job(s) {', '.join(jobs)}; "
            "wait for them or cancel them, then delete it.",
            jobs=jobs,
        )
    return model


def delete_model(*, session: Session, name: str, force: bool = False) -> None:
    """Delete a model and all its versions (refused while a job uses it: `model_to_delete`).

    A system model (`install-defaults`) is deleted only with `force`: deleting every model
    one by one leaves the defaults the engine falls back on. The stored bundles stay: they
    are content-addressed and may be shared with other versions.

    ON DELETE CASCADE removes the versions with the model, their embedding spaces and vectors,
    but no cascade reaches the spaces' partial HNSW indexes: delete a model with
    `engine.embeddings.spaces.delete_model`, which drops them and then calls this.
    """
    model = model_to_delete(session=session, name=name, force=force)
    session.execute(delete(Model).where(Model.id == model.id))
