"""System defaults (`install-defaults`) and reference resolution (`resolve_version`), on a real
database and bundle store; the templates are small stand-ins with the real ones' layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.models import Model
from engine.db.session import session_scope
from engine.errors import ModelNotFound, WeightsMissing
from engine.registry.defaults import InstalledDefault, install_defaults
from engine.registry.store import register_bundle, registry_storage, resolve_version
from sdk.packing import pack_bundle
from tests.fixtures.bundle_factory import make_bundle


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    root = tmp_path / "model_templates"
    make_bundle(
        root / "yolov8_autotag",
        weights=None,
        config={"weights": "yolov8n.pt"},
        extra={"README.md": "# YOLOv8 autotag\n"},
    )
    make_bundle(
        root / "resnet50_embedding",
        "embedding",
        config={"weights": "resnet50-*.pth", "embedding_dim": 2048},
    )
    make_bundle(
        root / "text_prompt_annotation",
        "auto_annotation",
        weights=None,
        config={
            "weights": "yolov8s-worldv2.pt",
            "extra_weights": {"text_encoder": "ViT-B-32.pt", "segmenter": None},
        },
    )
    return root


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("yolov8n.pt", "yolov8s-worldv2.pt", "ViT-B-32.pt"):
        (folder / name).write_bytes(f"weights of {name}".encode())
    return folder


def _install(
    factory: sessionmaker[Session],
    settings: Settings,
    templates: Path,
    applications: list[str] | None = None,
) -> list[InstalledDefault]:
    with session_scope(factory) as session:
        return install_defaults(
            session=session,
            storage=registry_storage(settings),
            settings=settings,
            templates=templates,
            applications=applications,
        )


def test_install_defaults_registers_each_template_as_its_system_default(
    session_factory: sessionmaker[Session], settings: Settings, templates: Path, weights_dir: Path
) -> None:
    settings = settings.model_copy(update={"weights_dir": weights_dir})
    results = {r.application: r for r in _install(session_factory, settings, templates)}
    assert {a: (r.name, r.version, r.installed) for a, r in results.items()} == {
        "autotagging": ("default-autotagging", 1, True),
        "embedding": ("default-embedding", 1, True),
        "auto_annotation": ("default-auto_annotation", 1, True),
    }
    assert results["autotagging"].weights == ["yolov8n.pt"]
    assert results["auto_annotation"].weights == ["yolov8s-worldv2.pt", "ViT-B-32.pt"]
    assert results["embedding"].missing_weights == ["resnet50-*.pth"]  # optional: falls back
    with session_scope(session_factory) as session:
        tagger = resolve_version(session, None, "auto_tagging")
        assert tagger.weights_file == "yolov8n.pt"
        assert tagger.label_list == ["circle", "square", "triangle"]
        embedder = resolve_version(session, "default", "embedding")
        assert (embedder.embedding_dim, embedder.weights_file) == (2048, None)
        defaults = session.scalars(
            select(Model.name).where(Model.is_system_default).order_by(Model.name)
        ).all()
    assert defaults == ["default-auto_annotation", "default-autotagging", "default-embedding"]


def test_installing_again_adds_versions_only_for_changed_templates(
    session_factory: sessionmaker[Session], settings: Settings, templates: Path, weights_dir: Path
) -> None:
    settings = settings.model_copy(update={"weights_dir": weights_dir})
    _install(session_factory, settings, templates)
    again = _install(session_factory, settings, templates)
    assert [(r.version, r.installed) for r in again] == [(1, False)] * 3
    (weights_dir / "resnet50-0676ba61.pth").write_bytes(b"resnet weights")
    third = {r.application: r for r in _install(session_factory, settings, templates)}
    assert (third["embedding"].version, third["embedding"].installed) == (2, True)
    assert third["embedding"].weights == ["resnet50-0676ba61.pth"]
    assert (third["autotagging"].version, third["autotagging"].installed) == (1, False)
    with session_scope(session_factory) as session:
        assert resolve_version(session, None, "embedding").weights_file == "resnet50-0676ba61.pth"


def test_missing_weights_name_the_file_and_install_nothing(
    session_factory: sessionmaker[Session], settings: Settings, templates: Path, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"weights_dir": tmp_path / "empty"})
    with pytest.raises(WeightsMissing) as caught:
        _install(session_factory, settings, templates)
    assert "put yolov8n.pt in " + str(tmp_path / "empty") in caught.value.message
    assert "METALAKE_WEIGHTS_DIR" in caught.value.message
    with session_scope(session_factory) as session:
        assert session.scalars(select(Model)).all() == []
    # one application at a time: the embedding default needs no weights file
    only = _install(session_factory, settings, templates, ["embedding"])
    assert [(r.name, r.version) for r in only] == [("default-embedding", 1)]


def test_install_defaults_takes_over_the_default_flag(
    session_factory: sessionmaker[Session],
    settings: Settings,
    templates: Path,
    weights_dir: Path,
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"weights_dir": weights_dir})
    archive = tmp_path / "mine.tar.gz"
    pack_bundle(make_bundle(tmp_path / "mine", "embedding"), archive)
    with session_scope(session_factory) as session:
        register_bundle(
            session=session,
            storage=registry_storage(settings),
            settings=settings,
            name="mine",
            application="embedding",
            archive=archive,
        )
        session.execute(Model.__table__.update().values(is_system_default=True))
    _install(session_factory, settings, templates, ["embedding"])
    with session_scope(session_factory) as session:
        assert resolve_version(session, None, "embedding").model_id == session.scalar(
            select(Model.id).where(Model.name == "default-embedding")
        )


def test_resolve_version_references(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    storage = registry_storage(settings)
    archive = tmp_path / "b.tar.gz"
    pack_bundle(make_bundle(tmp_path / "b"), archive)
    with session_scope(session_factory) as session:
        with pytest.raises(ModelNotFound) as no_default:
            resolve_version(session, None, "autotagging")
        assert "install-defaults" in no_default.value.message
        assert "No autotagging models are registered yet" in no_default.value.message
        for _ in range(2):
            register_bundle(
                session=session,
                storage=storage,
                settings=settings,
                name="tagger",
                application="autotagging",
                archive=archive,
            )
        assert resolve_version(session, "tagger", "autotagging").version == 2
        assert resolve_version(session, "tagger@1", "auto_tagging").version == 1
        with pytest.raises(ModelNotFound) as unknown:
            resolve_version(session, "tager", "autotagging")
        assert "Registered autotagging models: tagger." in unknown.value.message
        with pytest.raises(ModelNotFound) as wrong_kind:
            resolve_version(session, "tagger", "embedding")
        assert "not embedding" in wrong_kind.value.message
        assert "No embedding models are registered yet" in wrong_kind.value.message
        with pytest.raises(ModelNotFound, match="no version 5"):
            resolve_version(session, "tagger@5", "autotagging")


def test_the_install_defaults_command(
    database_url: str, tmp_path: Path, templates: Path, weights_dir: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALAKE_")}
    env.update(
        DATABASE_URL=database_url,
        METALAKE_HOME=str(tmp_path / "home"),
        METALAKE_WEIGHTS_DIR=str(weights_dir),
    )
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "models",
        "install-defaults",
        "--templates",
        str(templates),
    ]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "installed default-autotagging@1 (autotagging; weights: yolov8n.pt)" in first.stdout
    assert "without resnet50-*.pth" in first.stdout
    assert (tmp_path / "home" / "bundles").is_dir()
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.stdout.count("already installed") == 3

    env["METALAKE_WEIGHTS_DIR"] = str(tmp_path / "nothing")
    (tmp_path / "nothing").mkdir()
    (templates / "yolov8_autotag" / "README.md").write_text("changed")
    failed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "error: The default autotagging model needs yolov8n.pt: "
        f"put yolov8n.pt in {tmp_path / 'nothing'}"
    )
    assert "Traceback" not in failed.stderr
