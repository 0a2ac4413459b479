"""Bundle archives: safe extraction of an uploaded `.tar.gz`, and packing (`sdk.packing`).

Every member is inspected before anything of it is written, and written by this code (not by
`tarfile.extractall`, whose safety filters depend on the Python patch release): absolute
paths, `..`, links leaving the bundle, device files and FIFOs, duplicate members, and archives
past the configured size or file count are refused with `BundleInvalid` naming the member and
the rule. The model host extracts stored bundles with `extract_bundle` too.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import BundleInvalid, BundleTooLarge
from sdk.packing import pack_bundle

__all__ = ["ARCHIVE", "Limits", "bundle_root", "extract_bundle", "pack_bundle"]

ARCHIVE = "(archive)"  # the `path` of refusals about the archive as a whole
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
# What writing a member fails with when the archive's own paths collide (a file where a folder
# is needed, a link loop, a name too long): the archive's fault, unlike ENOSPC or EACCES.
PATH_ERRNOS = frozenset(
    {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}
)


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_files: int


def extract_bundle(archive: Path, dest: Path, limits: Limits) -> Path:
    """Extract `archive` into the empty folder `dest`; returns the bundle root (`bundle_root`)."""
    _check_gzip(archive)
    dest.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(dest.resolve(), limits)
    try:
        with (
            archive.open("rb") as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as unzipped,
            tarfile.open(fileobj=unzipped, mode="r|") as tar,
        ):
            for member in tar:
                extractor.add(tar, member)
            # Read to the end so gzip checks its trailer (CRC-32 and length): tar stops at its
            # end-of-archive blocks, and a flipped bit inside a member would go unnoticed.
            while unzipped.read(CHUNK):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleInvalid(
            f"The archive is corrupt or truncated ({exc}); pack it again (`tar czf "
            "bundle.tar.gz -C <bundle folder> .`) or pass the folder itself.",
            path=ARCHIVE,
            rule="archive_corrupt",
        ) from exc
    extractor.check_links()
    if extractor.count == 0:
        raise BundleInvalid(
            "The archive holds no files; it should contain code/inference.py, "
            "code/requirements.txt and the model's files.",
            path=ARCHIVE,
            rule="archive_empty",
        )
    return bundle_root(dest)


def bundle_root(folder: Path) -> Path:
    """`folder`, or its single sub-folder when the archive wrapped the layout in one
    (`my_model/code/...`), which is common when a folder is tarred from its parent."""
    if (folder / "code").is_dir():
        return folder
    children = [c for c in folder.iterdir() if not c.name.startswith("._")]
    if (
        len(children) == 1
        and children[0].is_dir()
        and not children[0].is_symlink()
        and (children[0] / "code").is_dir()
    ):
        return children[0]
    return folder


def _check_gzip(archive: Path) -> None:
    with archive.open("rb") as handle:
        head = handle.read(2)
    if not head:
        raise BundleInvalid(
            "The archive is empty (0 bytes): upload the bundle folder or a .tar.gz of it.",
            path=ARCHIVE,
            rule="archive_empty",
        )
    if head != GZIP_MAGIC:
        raise BundleInvalid(
            "The archive is not gzip-compressed: a bundle is a .tar.gz "
            "(`tar czf bundle.tar.gz -C <bundle folder> .`), or pass the folder.",
            path=ARCHIVE,
            rule="archive_not_gzip",
        )


def member_path(name: str) -> PurePosixPath | None:
    """The member's path relative to the bundle (None for the root itself), or a refusal."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BundleInvalid(
            f"{name} is an absolute path; archive members must be relative to "
            "the bundle root (pack with `tar czf bundle.tar.gz -C <folder> .`).",
            path=name,
            rule="absolute_path",
        )
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise BundleInvalid(
            f"{name} contains `..`; archive members must stay inside the bundle.",
            path=name,
            rule="parent_reference",
        )
    return PurePosixPath(*parts) if parts else None


class _Extractor:
    """Writes members one by one under `root`, checking each first."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self.limits = limits
        self.count = 0
        self.total = 0

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.count += 1
        if self.count > self.limits.max_files:
            raise BundleInvalid(
                f"The bundle has more than {self.limits.max_files} files and folders "
                f"(METALAKE_BUNDLE_MAX_FILES), counting up to {member.name}; leave datasets "
                "and caches out of it.",
                path=member.name,
                rule="too_many_files",
                limit=self.limits.max_files,
            )
        relative = member_path(member.name)
        if relative is None:
            if not member.isdir():
                raise BundleInvalid(
                    f"{member.name!r} is not a valid member name.",
                    path=member.name,
                    rule="absolute_path",
                )
            return
        target = self.root / relative
        self._check_inside(target.parent, member.name, "its folder is reached through a link")
        if os.path.lexists(target) and not (
            member.isdir() and target.is_dir() and not target.is_symlink()
        ):
            raise BundleInvalid(
                f"{member.name} appears twice in the archive; pack it again.",
                path=member.name,
                rule="duplicate_member",
            )
        try:
            self._write(tar, member, relative, target)
        except OSError as exc:
            if exc.errno not in PATH_ERRNOS:
                raise
            raise BundleInvalid(
                f"{member.name} cannot be written inside the bundle ({exc.strerror}): a file "
                "and a folder share a name, a link loops, or a name is too long. Pack the "
                "bundle again from its folder (`tar czf bundle.tar.gz -C <bundle folder> .`).",
                path=member.name,
                rule="unwritable_member",
            ) from exc

    def _write(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, relative: PurePosixPath, target: Path
    ) -> None:
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        elif member.isfile():
            self._file(tar, member, target)
        elif member.issym():
            self._symlink(member, relative, target)
        elif member.islnk():
            self._hardlink(member, target)
        else:
            kind = (
                "device"
                if member.isdev() and not member.isfifo()
                else ("FIFO" if member.isfifo() else "special file")
            )
            raise BundleInvalid(
                f"{member.name} is a {kind}; a bundle holds only regular files, "
                "folders and links inside it.",
                path=member.name,
                rule="special_file",
            )

    def check_links(self) -> None:
        """Each link was inside when written; a later member may have changed what an earlier
        link resolves through, so the finished tree is checked once more."""
        for folder, dirs, names in os.walk(self.root):
            for name in dirs + names:
                path = Path(folder) / name
                if path.is_symlink():
                    relative = path.relative_to(self.root).as_posix()
                    self._check_inside(path, relative, f"it links to {os.readlink(path)!r}")

    def _check_inside(self, path: Path, name: str, why: str) -> None:
        real = os.path.realpath(path)
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise BundleInvalid(
                f"{name} leaves the bundle ({why}); links must point inside it.",
                path=name,
                rule="link_escape",
            )

    def _grow(self, size: int, name: str) -> None:
        self.total += size
        if self.total > self.limits.max_bytes:
            raise BundleTooLarge(
                f"The bundle's files add up to more than {self.limits.max_bytes:,} bytes "
                f"(METALAKE_BUNDLE_MAX_BYTES) at {name}; leave unneeded files out or ask the "
                "engine's operator to raise the limit.",
                path=name,
                rule="too_large",
                limit=self.limits.max_bytes,
            )

    def _file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
        self._grow(member.size, member.name)
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has a stream
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o755 if member.mode & 0o111 else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)

    def _symlink(self, member: tarfile.TarInfo, relative: PurePosixPath, target: Path) -> None:
        link = member.linkname
        if not link or link.startswith("/"):
            raise BundleInvalid(
                f"{member.name} is a link to {link!r}, outside the bundle; "
                "replace the link with the file itself.",
                path=member.name,
                rule="link_escape",
            )
        lexical = os.path.normpath(os.path.join(str(relative.parent), link))
        if lexical == ".." or lexical.startswith("../"):
            raise BundleInvalid(
                f"{member.name} is a link to {link!r}, outside the bundle; "
                "replace the link with the file itself.",
                path=member.name,
                rule="link_escape",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        self._check_inside(target.parent / link, member.name, f"it links to {link!r}")
        os.symlink(link, target)

    def _hardlink(self, member: tarfile.TarInfo, target: Path) -> None:
        link = member.linkname
        parts = PurePosixPath(link).parts
        if not link or link.startswith(("/", "\\")) or ".." in parts:
            raise BundleInvalid(
                f"{member.name} is a hard link to {link!r}, outside the bundle; "
                "replace the link with the file itself.",
                path=member.name,
                rule="link_escape",
            )
        linked = member_path(link)
        source = self.root / linked if linked else self.root
        self._check_inside(source, member.name, f"it links to {member.linkname!r}")
        if source.is_symlink() or not source.is_file():
            raise BundleInvalid(
                f"{member.name} is a hard link to {member.linkname!r}, which is "
                "not a file earlier in the archive.",
                path=member.name,
                rule="link_escape",
            )
        self._grow(source.stat().st_size, member.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target, follow_symlinks=False)
