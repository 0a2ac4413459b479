"""System default models: the templates of `model_templates/` registered as `default-<application>`.

Each template's declared weights are copied from METALAKE_WEIGHTS_DIR into a temporary copy,
which is packed and registered like any upload; installing again adds a version only when the
bytes changed. What is refused and what is only reported: docs/bundles.md, "System defaults".
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import Model, ModelVersion
from engine.errors import InvalidInput, WeightsMissing
from engine.registry.archive import pack_bundle
from engine.registry.bundle import (
    INFERENCE,
    declared_matches,
    manifest,
    normalize_application,
    read_config,
)
from engine.registry.store import register_bundle
from engine.storage import Storage
from sdk.schemas import Application


@dataclass(frozen=True)
class DefaultTemplate:
    folder: str
    application: Application

    @property
    def name(self) -> str:
        return f"default-{self.application}"


DEFAULT_TEMPLATES = (
    DefaultTemplate("yolov8_autotag", Application.AUTOTAGGING),
    DefaultTemplate("resnet50_embedding", Application.EMBEDDING),
    DefaultTemplate("text_prompt_annotation", Application.AUTO_ANNOTATION),
)


@dataclass(frozen=True)
class InstalledDefault:
    name: str
    application: Application
    version: int
    installed: bool  # False: the latest version already held these exact bytes
    weights: list[str] = field(default_factory=list)  # weights files copied in
    missing_weights: list[str] = field(default_factory=list)  # optional ones not found


def templates_dir() -> Path:
    """`model_templates/` of the source tree."""
    return Path(__file__).resolve().parents[2] / "model_templates"


def install_defaults(
    *,
    session: Session,
    storage: Storage,
    settings: Settings,
    templates: Path | None = None,
    applications: Sequence[str] | None = None,
) -> list[InstalledDefault]:
    """Register the default template of each application (or of `applications`) as its system
    default. Every template is prepared before any is registered: a missing weights file
    installs nothing."""
    wanted = {normalize_application(a) for a in applications} if applications else None
    chosen = [t for t in DEFAULT_TEMPLATES if wanted is None or t.application in wanted]
    with tempfile.TemporaryDirectory(prefix="metalake-defaults-") as work:
        prepared = [
            _prepare(t, templates or templates_dir(), settings.weights_path, Path(work))
            for t in chosen
        ]
        return [
            _install(session, storage, settings, t, p)
            for t, p in zip(chosen, prepared, strict=True)
        ]


@dataclass(frozen=True)
class _Prepared:
    archive: Path
    sha256: str
    weights: list[str]
    missing: list[str]


def _prepare(
    template: DefaultTemplate, templates: Path, weights_dir: Path, work: Path
) -> _Prepared:
    source = templates / template.folder
    if not (source / INFERENCE).is_file():
        raise InvalidInput(
            f"The {template.application} template {source} is missing or has no "
            f"{INFERENCE}; pass the model_templates folder with --templates."
        )
    copy = work / template.folder
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    present = [entry["path"] for entry in manifest(copy)]
    config = read_config(copy)
    copied: list[str] = []
    missing: list[str] = []
    for entry in (*config.weights, *config.extra_weights):
        if declared_matches(present, entry):
            continue
        found = _find(weights_dir, Path(entry).name)
        if found is None:
            if template.application != Application.EMBEDDING and entry in config.weights:
                raise WeightsMissing(
                    f"The default {template.application} model needs {entry}: put "
                    f"{Path(entry).name} in {weights_dir} (METALAKE_WEIGHTS_DIR), then run "
                    "`metalake models install-defaults` again.",
                    file=Path(entry).name,
                    weights_dir=str(weights_dir),
                )
            missing.append(entry)
            continue
        target = copy / Path(entry).parent / found.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, target)
        copied.append(found.name)
    archive = work / f"{template.folder}.tar.gz"
    pack_bundle(copy, archive)
    digest = hashlib.sha256()
    with archive.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    shutil.rmtree(copy)  # the archive is all that is needed now
    return _Prepared(archive=archive, sha256=digest.hexdigest(), weights=copied, missing=missing)


def _find(folder: Path, name: str) -> Path | None:
    """`name` (or the newest-sorting match of a pattern such as `resnet50-*.pth`) in `folder`."""
    if not folder.is_dir():
        return None
    if any(c in name for c in "*?["):
        matches = sorted(p for p in folder.glob(name) if p.is_file())
        return matches[-1] if matches else None
    path = folder / name
    return path if path.is_file() else None


def _install(
    session: Session,
    storage: Storage,
    settings: Settings,
    template: DefaultTemplate,
    prepared: _Prepared,
) -> InstalledDefault:
    existing = session.scalars(
        select(ModelVersion)
        .join(Model)
        .where(Model.name == template.name)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    ).one_or_none()
    if existing is not None and existing.sha256 == prepared.sha256:
        version, installed = existing.version, False
    else:
        version = register_bundle(
            session=session,
            storage=storage,
            settings=settings,
            name=template.name,
            application=template.application,
            archive=prepared.archive,
            system=True,
        ).version
        installed = True
    # One system default per application (a partial unique index): clear, then set.
    session.execute(
        update(Model)
        .where(Model.application == template.application, Model.name != template.name)
        .values(is_system_default=False)
    )
    session.execute(
        update(Model)
        .where(Model.name == template.name)
        .values(is_system_default=True, is_system=True)
    )
    return InstalledDefault(
        name=template.name,
        application=template.application,
        version=version,
        installed=installed,
        weights=prepared.weights,
        missing_weights=prepared.missing,
    )
