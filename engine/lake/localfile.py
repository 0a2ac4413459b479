"""Opening a file of the engine's disk by a path that was resolved at ingest, following no
symlink on the way.

Paths the lake stores are real paths (symlinks and `..` resolved before ingest), so a symlink in
one later means a component was swapped after the file was registered. Each component is opened
relative to the one before it with `O_NOFOLLOW` (`openat`), so a swapped directory is refused as
well as a swapped file, and the open descriptor pins the inode for the rest of the read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SymlinkInPath(OSError):
    """A component of the path is a symlink (or no longer a directory)."""


class NotRegularFile(OSError):
    """The path names a directory, device, FIFO or socket, not a regular file."""


def open_no_follow(path: Path) -> BinaryIO:
    """Open the regular file at absolute `path` for reading, refusing symlinks in any component.

    Raises `FileNotFoundError`, `SymlinkInPath`, `NotRegularFile` or another `OSError`.
    """
    if not path.is_absolute():
        raise ValueError(f"{path} is not absolute")
    *folders, name = path.parts[1:] or ("",)
    dir_fd = os.open(path.anchor or "/", _DIR_FLAGS)
    try:
        for folder in folders:
            try:
                next_fd = os.open(folder, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SymlinkInPath(
                        exc.errno, f"{folder} is a symlink or not a folder", str(path)
                    ) from exc
                raise
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SymlinkInPath(exc.errno, f"{name} is a symlink", str(path)) from exc
            raise
    finally:
        os.close(dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
