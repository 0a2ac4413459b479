"""Model bundles for the registry tests: valid folders in the seed's layout, and crafted archives.

Tar files are written here with `tarfile` directly (not `sdk.packing`), the way a user's `tar`
would, so the engine's extraction is tested against archives it did not make itself.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

INFERENCE = '''\
import json


def model_fn(model_dir):
    return {"dir": model_dir}


def input_fn(request_body, request_content_type):
    return request_body


def predict_fn(input_data, model):
    return []


def output_fn(prediction, accept):
    return json.dumps({"boxes": []})
'''

LABELS = ("circle", "square", "triangle")


def make_bundle(root: Path, application: str = "autotagging", *,
                labels: Iterable[str] | None = LABELS, weights: str | None = "model.pt",
                weights_bytes: bytes = b"not really weights",
                inference: str = INFERENCE, requirements: str | None = "",
                config: Mapping[str, object] | None = None,
                extra: Mapping[str, bytes | str] | None = None) -> Path:
    """A bundle folder: code/inference.py, code/requirements.txt, and for autotagging /
    auto_annotation label_list.yaml and a weights file. Pass None to leave a part out."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(inference)
    if requirements is not None:
        (code / "requirements.txt").write_text(requirements)
    if application != "embedding":
        if labels is not None:
            (root / "label_list.yaml").write_text(yaml.safe_dump(list(labels)))
        if weights is not None:
            (root / weights).parent.mkdir(parents=True, exist_ok=True)
            (root / weights).write_bytes(weights_bytes)
    if config is not None:
        (root / "metalake.yaml").write_text(yaml.safe_dump(dict(config)))
    for name, content in (extra or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def tar_folder(folder: Path, target: Path, *, wrap: str | None = None) -> Path:
    """`tar czf target -C folder .` (or, with `wrap`, the folder inside a top-level `wrap/`)."""
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            tar.add(path, arcname=f"{wrap}/{name}" if wrap else name, recursive=False)
    return target


def file_member(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = 0o644
    return info, content


def link_member(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def special_member(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


def valid_members(application: str = "autotagging") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        file_member("code/inference.py", INFERENCE.encode()),
        file_member("code/requirements.txt", b""),
    ]
    if application != "embedding":
        members += [file_member("label_list.yaml", yaml.safe_dump(list(LABELS)).encode()),
                    file_member("model.pt", b"weights")]
    return members


def tar_members(target: Path, members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A .tar.gz of crafted members (TarInfo, content or None)."""
    with tarfile.open(target, "w:gz") as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return target
