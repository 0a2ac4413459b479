"""What a file is: its kind (by extension), SHA-256, size, pixel size and, for videos, timing.

Files are read in chunks and images header-only; the size is as displayed (EXIF rotation
applied). Every failure is an `UnreadableFile` whose message is the reason recorded in
`ingest_failures`. Why it reads what it reads: docs/architecture.md, "Ingest".
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from engine.errors import UnreadableFile
from engine.lake.localfile import NotRegularFile, SymlinkInPath, open_no_follow

Kind = Literal["image", "video"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
# Dropped by operating systems and sync tools, never content. `._*` (macOS resource forks)
# and every other dot-file are covered by the hidden-name rule.
SYSTEM_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
SYSTEM_DIR_NAMES = frozenset({"__macosx", "$recycle.bin"})
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


def kind_of(name: str) -> Kind | None:
    """`image`, `video` or None (not a media file), from the extension."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def is_ignored(relative_path: str) -> bool:
    """Hidden files and folders (`.x`, macOS `._x`) and OS litter (`Thumbs.db`, ...)."""
    parts = PurePosixPath(relative_path).parts
    return any(p.startswith(".") or p.lower() in SYSTEM_DIR_NAMES for p in parts) or (
        bool(parts) and parts[-1].lower() in SYSTEM_FILE_NAMES
    )


def skip_reason(relative_path: str, collection_kind: Kind) -> str | None:
    """Why a file is not registered in a collection of `collection_kind`, or None if it fits."""
    if is_ignored(relative_path):
        return "skipped: hidden or system file"
    kind = kind_of(relative_path)
    if kind is None:
        allowed = IMAGE_EXTENSIONS if collection_kind == "image" else VIDEO_EXTENSIONS
        return (
            f"skipped: {PurePosixPath(relative_path).suffix or 'no extension'} is not a "
            f"supported {collection_kind} extension ({', '.join(sorted(allowed))})"
        )
    if kind != collection_kind:
        return (
            f"skipped: {_a(kind)} file cannot join {_a(collection_kind)} collection; "
            f"upload it to {_a(kind)} collection"
        )
    return None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


@dataclass(frozen=True)
class Probe:
    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None


# -- images ----------------------------------------------------------------------------------
PILLOW_DEFAULT_MAX_PIXELS = 89_478_485  # Pillow refuses images above twice this


def allow_pillow_pixels(max_pixels: int) -> None:
    """Let Pillow open images up to METALAKE_MAX_IMAGE_PIXELS: its own bomb check (process-wide,
    at 2 x Image.MAX_IMAGE_PIXELS) would otherwise refuse a raised limit first. The engine's
    check against the setting stays in `image_size`."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max(PILLOW_DEFAULT_MAX_PIXELS, max_pixels)


def image_size(handle: IO[bytes], *, max_pixels: int) -> tuple[int, int]:
    """(width, height) as displayed, from the header alone (`handle` is read from its start)."""
    from PIL import Image, UnidentifiedImageError

    allow_pillow_pixels(max_pixels)
    handle.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow warns above its limit; the limit that counts is checked just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(handle)
        with img:
            width, height = img.size
            orientation = _orientation(img)
    except Image.DecompressionBombError as exc:
        raise UnreadableFile(
            f"refused as a decompression bomb: {exc} Downscale or tile the image."
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableFile(
            "not a readable image: Pillow cannot identify its format (corrupt, or not an "
            "image despite its extension)"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableFile(f"corrupt image header: {exc}") from exc
    except Exception as exc:
        # A decoder plugin failing in its own way is still one unreadable file, not a failed
        # upload (ultralytics, imported in a process, patches Image.open to try pi_heif).
        raise UnreadableFile(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    if width <= 0 or height <= 0:
        raise UnreadableFile(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise UnreadableFile(
            f"refused as a decompression bomb: {width}x{height} = {width * height} pixels is "
            f"more than METALAKE_MAX_IMAGE_PIXELS={max_pixels}; downscale the image or raise "
            "that limit on the engine"
        )
    if orientation in _ROTATED_ORIENTATIONS:
        width, height = height, width
    return width, height


def _orientation(img: Any) -> int:
    if img.format == "PNG" and "exif" not in img.info:
        # Pillow's PNG getexif() decodes every pixel to look for an eXIf chunk after the image
        # data; an orientation there is rare enough to leave unread.
        return 1
    try:
        value = img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block does not make the image unusable
        return 1
    return value if isinstance(value, int) else 1


def check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise UnreadableFile("empty file (0 bytes)")
    if size > max_bytes:
        raise UnreadableFile(
            f"too large: {size} bytes is more than METALAKE_INGEST_MAX_FILE_BYTES={max_bytes}; "
            "split or compress the file, or raise that limit on the engine"
        )


def _hash(handle: IO[bytes], max_bytes: int) -> tuple[str, int]:
    """(sha256, size) of `handle` read in 1 MiB chunks, refused once past `max_bytes` (a file
    that grew after its size was checked)."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        size += len(chunk)
        if size > max_bytes:
            check_size(size, max_bytes)
        digest.update(chunk)
    check_size(size, max_bytes)
    return digest.hexdigest(), size


def probe_image_handle(handle: IO[bytes], *, max_pixels: int, max_bytes: int) -> Probe:
    """Probe a seekable image: hash it in chunks, then read its header from the start."""
    handle.seek(0)
    sha, size = _hash(handle, max_bytes)
    width, height = image_size(handle, max_pixels=max_pixels)
    return Probe(sha, size, width, height)


# -- videos ----------------------------------------------------------------------------------
def video_info(path: Path) -> tuple[int, int, float | None, int | None]:
    """(width, height, fps, frame_count) of a video OpenCV can decode; the size is the first
    decoded frame's (after OpenCV applies the container's rotation)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise UnreadableFile("OpenCV cannot open this video (corrupt or unsupported codec)")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
        if not ok or frame is None:
            raise UnreadableFile("OpenCV opened this video but could not decode a frame")
        height, width = int(frame.shape[0]), int(frame.shape[1])
    finally:
        capture.release()
    return width, height, (fps if fps > 0 else None), (frames if frames > 0 else None)


def probe_video_path(path: Path, handle: IO[bytes], *, max_bytes: int) -> Probe:
    """Hash the open `handle` and read the video's timing from `path` (the same file)."""
    sha, size = _hash(handle, max_bytes)
    width, height, fps, frames = video_info(path)
    return Probe(sha, size, width, height, fps, frames)


# -- entry points ------------------------------------------------------------------------------
def probe_local(path: Path, kind: Kind, *, max_pixels: int, max_bytes: int) -> Probe:
    """Probe a file on the engine's disk by its real path (a symlink in it is refused)."""
    try:
        with open_no_follow(path) as handle:
            check_size(os.fstat(handle.fileno()).st_size, max_bytes)
            if kind == "video":
                return probe_video_path(_same_file(path, handle), handle, max_bytes=max_bytes)
            return probe_image_handle(handle, max_pixels=max_pixels, max_bytes=max_bytes)
    except FileNotFoundError as exc:
        raise UnreadableFile("the file disappeared before it could be read") from exc
    except SymlinkInPath as exc:
        raise UnreadableFile(
            "the path was changed into a symlink while being ingested; "
            "ingest the file by its real path"
        ) from exc
    except NotRegularFile as exc:
        raise UnreadableFile("not a regular file (a directory, device or FIFO)") from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc.strerror or exc}") from exc


def _same_file(path: Path, handle: IO[bytes]) -> Path:
    """A path OpenCV can open that is the file `handle` has open (Linux: /proc/self/fd/N), so a
    path swapped after it was opened is not what is read; elsewhere `path` itself."""
    by_descriptor = Path(f"/proc/self/fd/{handle.fileno()}")
    return by_descriptor if by_descriptor.exists() else path


def _spool(stream: IO[bytes], sink: IO[bytes], max_bytes: int) -> None:
    """Copy `stream` into `sink`, refusing it once it passes `max_bytes`."""
    copied = 0
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        copied += len(chunk)
        if copied > max_bytes:
            check_size(copied, max_bytes)
        sink.write(chunk)
    sink.flush()


def probe_stream(
    stream: IO[bytes],
    kind: Kind,
    *,
    suffix: str,
    max_pixels: int,
    max_bytes: int,
    size: int | None = None,
) -> Probe:
    """Probe bytes that are not on the engine's disk (S3, an upload), never holding them in
    memory: a seekable stream (an upload's spooled file) is read in place, any other is spooled
    to a temporary file first. `size`, when known, refuses a file over the cap unread."""
    if size is not None:
        check_size(size, max_bytes)
    if kind == "image" and stream.seekable():
        stream.seek(0, os.SEEK_END)
        check_size(stream.tell(), max_bytes)
        return probe_image_handle(stream, max_pixels=max_pixels, max_bytes=max_bytes)
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="metalake-probe-")
    try:
        with os.fdopen(fd, "w+b") as spooled:
            _spool(stream, spooled, max_bytes)
            check_size(spooled.tell(), max_bytes)
            spooled.seek(0)
            if kind == "image":
                return probe_image_handle(spooled, max_pixels=max_pixels, max_bytes=max_bytes)
            return probe_video_path(Path(name), spooled, max_bytes=max_bytes)
    finally:
        Path(name).unlink(missing_ok=True)
