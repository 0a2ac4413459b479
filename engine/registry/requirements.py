"""`code/requirements.txt` of a bundle: package requirement specifiers only.

The model host installs them into an environment cached by their hash, from the package index
the engine is configured with; pip options (`-r`, `-c`, `-e`, `-f`, `--index-url`, `--hash`,
...), direct URLs or paths, and `$` (pip expands `${VAR}` from the engine's environment) would
escape that, so they are refused at registration.
"""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from engine.errors import BundleInvalid
from engine.textformats import excerpt

MAX_BYTES = 1 << 20
# pip installs a requirement named like an archive from that file (pip's is_archive_file)
ARCHIVE_SUFFIXES = (
    ".whl",
    ".zip",
    ".tar",
    ".tgz",
    ".tbz",
    ".txz",
    ".tlz",
    ".gz",
    ".bz2",
    ".xz",
    ".lz",
    ".lzma",
)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, content) with comments removed and `\\` continuations joined."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if pending is not None:
            start, head = pending
            raw, number = head + raw, start
            pending = None
        if raw.endswith("\\"):
            pending = (number, raw[:-1])
            continue
        content = raw.split(" #", 1)[0].split("\t#", 1)[0]
        content = "" if content.lstrip().startswith("#") else content.strip()
        if content:
            lines.append((number, content))
    if pending is not None and pending[1].strip():
        lines.append((pending[0], pending[1].strip()))
    return lines


def check_requirements(path: Path, name: str) -> list[str]:
    """The requirement lines of `path` (may be none), or a `BundleInvalid` for the first bad one."""
    if not path.is_file():
        raise BundleInvalid(
            f"{name} is missing: add it, empty if inference.py needs nothing beyond the "
            "engine's packages, else one requirement per line such as `timm==0.9.16`.",
            path=name,
            rule="requirements_missing",
        )
    if path.stat().st_size > MAX_BYTES:
        raise BundleInvalid(
            f"{name} is larger than {MAX_BYTES:,} bytes.", path=name, rule="requirements_invalid"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BundleInvalid(
            f"{name} is not UTF-8 text; save it as UTF-8.", path=name, rule="requirements_invalid"
        ) from exc
    found: list[str] = []
    for number, line in logical_lines(text):
        where = f"{name} line {number} ({excerpt(line, 120)!r})"
        if "$" in line:
            raise BundleInvalid(
                f"{where}: `$` is not allowed: pip expands environment variables such as "
                "${HOME} in requirement files, which would put the engine's environment into "
                "the install; write the value itself.",
                path=name,
                rule="requirements_env",
                line=number,
            )
        if line.startswith("-") or " -" in line:
            option = next(t for t in line.split() if t.startswith("-"))
            raise BundleInvalid(
                f"{where}: pip options such as {option} are not supported; list each package "
                "by name and version (the engine installs from its own package index).",
                path=name,
                rule="requirements_option",
                line=number,
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            kind = "a URL or path" if "/" in line or "\\" in line else "not a requirement"
            raise BundleInvalid(
                f"{where} is {kind}: write `package`, `package==1.2.3` or "
                f'`package>=1.2; python_version>="3.10"` ({exc}).',
                path=name,
                rule="requirements_invalid",
                line=number,
            ) from exc
        if requirement.url:
            raise BundleInvalid(
                f"{where}: direct URLs (`package @ https://...`) are not supported; require "
                "the package by name and version from the package index.",
                path=name,
                rule="requirements_url",
                line=number,
            )
        if requirement.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise BundleInvalid(
                f"{where}: pip reads a name ending in {requirement.name.rsplit('.', 1)[-1]!r} as "
                "the path of a file on the engine's disk; require the package by name and "
                "version from the package index.",
                path=name,
                rule="requirements_url",
                line=number,
            )
        found.append(line)
    return found
