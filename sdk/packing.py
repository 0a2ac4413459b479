"""Pack a model bundle folder into a reproducible `.tar.gz`, streaming file by file to disk.

Used by `Client.register_model` (a folder is packed before it is uploaded) and by the engine's
`metalake models install-defaults`, so the same folder always gives the same bytes, hence the same
SHA-256 wherever it is packed: entries sorted, times, owners and the gzip header zeroed, modes
reduced to 644 / 755. Hidden files and folders (`.git`, `.ipynb_checkpoints`, ...), `__pycache__`
and `*.pyc` are left out; symbolic links are followed, so the bundle holds the files themselves.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from pathlib import Path

SKIPPED_DIRS = frozenset({"__pycache__", "__MACOSX"})
COMPRESS_LEVEL = 1  # weights hardly compress; level 1 keeps packing I/O-bound


def _skipped(name: str, *, is_dir: bool) -> bool:
    if name.startswith("."):
        return True
    return name in SKIPPED_DIRS if is_dir else name.endswith((".pyc", ".pyo"))


def bundle_entries(directory: Path) -> list[tuple[Path, str, bool]]:
    """(path on disk, name in the archive, is a folder) for everything packed, in archive order."""
    root = directory.resolve()
    entries: list[tuple[Path, str, bool]] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop: each real folder is packed once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not _skipped(d, is_dir=True))
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        if prefix:
            entries.append((Path(folder), prefix.rstrip("/"), True))
        for name in sorted(names):
            path = Path(folder) / name
            if _skipped(name, is_dir=False) or not path.is_file():  # dangling links, fifos
                continue
            entries.append((path, prefix + name, False))
    return entries


def pack_bundle(directory: str | os.PathLike[str], target: str | os.PathLike[str]) -> int:
    """Write `directory`'s bundle to the `target` `.tar.gz`; returns the archive's size."""
    source = Path(directory)
    if not source.is_dir():
        raise NotADirectoryError(f"{source} is not a folder")
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=COMPRESS_LEVEL, mtime=0
        ) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path, name, is_dir in bundle_entries(source):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            with path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                info.size = status.st_size
                info.mode = 0o755 if status.st_mode & stat.S_IXUSR else 0o644
                tar.addfile(info, handle)  # copies in chunks: never the whole file in memory
    return os.path.getsize(target)
