"""Environments for bundles' requirements: one cached venv per distinct requirements.txt.

`EnvironmentCache.python_for` builds (once per machine, under a file lock) or finds the venv of a
bundle's requirements; empty requirements need none. docs/bundles.md ("Inside the model host")
says how a venv sees the engine's packages and why builds happen in place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import time
import venv
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from engine.errors import ModelEnvironmentFailed
from engine.registry.requirements import logical_lines

MARKER = ".metalake-env.json"
PTH_FILE = "metalake-engine-packages.pth"

log = logging.getLogger(__name__)


def normalize_requirements(text: str) -> list[str]:
    """The requirement lines that matter (no comments, blank lines or repeated whitespace),
    deduplicated and sorted: the identity of an environment."""
    return sorted({" ".join(line.split()) for _, line in logical_lines(text)})


def engine_site_dirs() -> list[str]:
    """The site-packages directories of the engine's interpreter, in its order."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def environment_key(lines: list[str]) -> str:
    identity = {
        "requirements": lines,
        "python": sys.version,
        "prefix": sys.prefix,
        "engine_site_dirs": engine_site_dirs(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


class EnvironmentCache:
    """Builds and finds the interpreters that run bundles with their requirements."""

    def __init__(
        self, root: Path, *, environ: Mapping[str, str], install_timeout: float = 1800
    ) -> None:
        self.root = root
        self._environ = dict(environ)  # for pip: already stripped of the engine's secrets
        self._install_timeout = install_timeout

    def python_for(self, requirements: str, *, workdir: Path | None = None) -> Path:
        """The interpreter for a bundle with these requirements, building its environment the
        first time. `workdir` (the bundle's code dir) resolves relative paths in the file."""
        lines = normalize_requirements(requirements)
        if not lines:
            return Path(sys.executable)
        key = environment_key(lines)
        env_dir = self.root / key
        if self.is_ready(env_dir):
            return python_in(env_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f"{key}.lock"):
            if not self.is_ready(env_dir):  # another process may have built it meanwhile
                self._build(env_dir, lines, workdir)
        return python_in(env_dir)

    @staticmethod
    def is_ready(env_dir: Path) -> bool:
        return (env_dir / MARKER).is_file()

    def _build(self, env_dir: Path, lines: list[str], workdir: Path | None) -> None:
        if env_dir.exists():
            log.warning("removing the unfinished environment %s", env_dir)
            shutil.rmtree(env_dir)
        log_file = env_dir.with_name(f"{env_dir.name}.log")
        started = time.monotonic()
        log.info("installing %d requirement(s) into %s", len(lines), env_dir)
        try:
            venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
            _site_packages(env_dir).joinpath(PTH_FILE).write_text(
                "".join(f"import site; site.addsitedir({d!r})\n" for d in engine_site_dirs())
            )
            requirements = env_dir / "requirements.txt"
            requirements.write_text("\n".join(lines) + "\n")
            self._pip_install(env_dir, requirements, log_file, workdir)
        except BaseException:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise
        marker = {
            "requirements": lines,
            "python": sys.version,
            "seconds": round(time.monotonic() - started, 2),
            "created_at": time.time(),
        }
        tmp = env_dir / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=2))
        tmp.replace(env_dir / MARKER)
        log.info("environment %s ready in %.1f s", env_dir.name, marker["seconds"])

    def _pip_install(
        self, env_dir: Path, requirements: Path, log_file: Path, workdir: Path | None
    ) -> None:
        argv = [
            str(python_in(env_dir)),
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ]
        with log_file.open("wb") as output:
            output.write(f"$ {' '.join(argv)}\n".encode())
            output.flush()
            try:
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=self._environ,
                    cwd=workdir or env_dir,
                    timeout=self._install_timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ModelEnvironmentFailed(
                    f"installing the bundle's requirements took longer than "
                    f"{self._install_timeout:g} s (METALAKE_ENV_INSTALL_TIMEOUT); see {log_file}",
                    log_file=str(log_file),
                ) from exc
        if result.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
            raise ModelEnvironmentFailed(
                f"pip could not install the bundle's code/requirements.txt (exit code "
                f"{result.returncode}); fix the requirements and run again. Last lines of "
                f"{log_file}:\n{tail}",
                log_file=str(log_file),
            )


def python_in(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _site_packages(env_dir: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return env_dir / "lib" / version / "site-packages"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
