"""The default templates in model_templates/ pass the registry's bundle checks (given the
weights files their metalake.yaml declares, which install-defaults copies in)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.registry.bundle import read_config, validate_bundle
from engine.registry.defaults import DEFAULT_TEMPLATES, DefaultTemplate, templates_dir


@pytest.mark.parametrize("template", DEFAULT_TEMPLATES, ids=lambda t: t.folder)
def test_each_template_is_a_valid_bundle(template: DefaultTemplate, tmp_path: Path) -> None:
    source = templates_dir() / template.folder
    if not source.is_dir():
        pytest.skip(f"{source} is not written yet")
    copy = tmp_path / template.folder
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    config = read_config(copy)
    for name in config.weights:
        (copy / name.replace("*", "0")).write_bytes(b"stand-in weights")
    info = validate_bundle(copy, template.application)
    if template.application == "embedding":
        assert info.embedding_dim == 2048
    else:
        assert info.label_list is not None
        assert len(info.label_list) == 80
        assert info.weights_file == config.weights[0]
