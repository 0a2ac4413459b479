"""The box a model host runs in: bubblewrap namespaces and an unprivileged uid.

`Sandbox.probe(settings)` finds out once per worker process whether bundle code can be boxed
in here, and `Sandbox.command(...)` wraps the host's command line accordingly. A boxed host
sees a read-only view of the system, the interpreter, its bundle and its environment, a private
/tmp and /proc, no network but its own loopback, and one writable directory holding the Unix
socket it answers on. docs/security.md says what this keeps out and what it does not.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.config import Settings

log = logging.getLogger(__name__)

# Top-level system directories a process needs to run programs (a symlink on merged-/usr).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What a Python process and its libraries read in /etc; nothing with secrets.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "hosts",
    "nsswitch.conf",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "fonts",
    "mime.types",
    "protocols",
    "services",
    "os-release",
    "lsb-release",
    "debian_version",
    "timezone",
    "host.conf",
    "gai.conf",
)
# Where the box shows the host's socket directory, its bundle (SageMaker's place for it), the
# bundle's environment and the serving program.
SOCKET_DIR = "/run/metalake-host"
MODEL_DIR = "/opt/ml/model"
ENV_DIR = "/opt/metalake/env"
SERVE_FILE = "/opt/metalake/serve.py"
# The box's private tmpfs, also the host's home (where libraries write caches and settings).
BOX_TMP = "/tmp"  # noqa: S108 (a tmpfs of the box's own, not the machine's /tmp)
HOST_HOME = BOX_TMP
# Path-valued variables whose directories a boxed host may read if the operator passes them.
READABLE_VARIABLES = ("METALAKE_WEIGHTS_DIR", "TORCH_HOME", "HF_HOME")
PROBE_TIMEOUT = 20


def not_boxed_warning(reason: str) -> str:
    """The sentence `metalake status` and every job using an unboxed host show."""
    return f"model code is NOT sandboxed: {reason}"


@dataclass(frozen=True)
class Sandbox:
    """How this machine runs model hosts.

    boxed: in bubblewrap namespaces; `uid` is the uid the host runs as (None: the engine's
    own, inside a user namespace). Not boxed: `reason` says why, and the host runs as the
    engine's user with the engine's view of the files.
    """

    boxed: bool
    reason: str | None = None
    uid: int | None = None
    bwrap: str | None = None
    tmp_mb: int = 1024
    required: bool = False
    extra_readable: tuple[str, ...] = field(default_factory=tuple)

    @property
    def warning(self) -> str | None:
        return None if self.boxed else not_boxed_warning(self.reason or "unknown reason")

    def describe(self) -> str:
        if not self.boxed:
            return self.warning or ""
        who = f"uid {self.uid}" if self.uid is not None else "the engine's uid in a user namespace"
        return (
            f"model code is sandboxed: bubblewrap, {who}, own PID/network/mount/IPC "
            f"namespaces, read-only bundle, {self.tmp_mb} MB private /tmp"
        )

    # -- finding out ----------------------------------------------------------------------------
    @classmethod
    def probe(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> Sandbox:
        """Whether model code can be boxed in on this machine, tried with a real box."""
        source = os.environ if environ is None else environ
        readable = tuple(source[name] for name in READABLE_VARIABLES if source.get(name))
        if settings.weights_dir is not None:
            readable += (str(settings.weights_path),)
        unboxed = cls(
            boxed=False,
            tmp_mb=settings.sandbox_tmp_mb,
            required=settings.require_sandbox,
            extra_readable=readable,
        )
        if settings.sandbox == "off":
            return replace(unboxed, reason="METALAKE_SANDBOX=off")
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            return replace(
                unboxed,
                reason="bubblewrap (bwrap) is not installed; install the Debian package bubblewrap",
            )
        uid = settings.sandbox_uid if os.geteuid() == 0 else None
        candidate = replace(unboxed, boxed=True, uid=uid, bwrap=bwrap)
        problem = candidate.try_box()
        if problem:
            return replace(unboxed, reason=problem)
        return candidate

    def try_box(self) -> str | None:
        """Run `python -c` in a box like a host's; None if it worked, else why not."""
        check = (
            "import os, socket\n"
            "s = socket.socket()\n"
            "s.settimeout(1)\n"
            "assert s.connect_ex(('127.0.0.1', 1)) != 0\n"
            "print(os.getuid(), os.getpid())\n"
        )
        argv = self.command([sys.executable, "-I", "-c", check], read_only=[], environ={})
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                timeout=PROBE_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not be started ({exc})"
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return f"the kernel refused the namespaces bubblewrap needs ({detail})"
        uid, pid = (int(word) for word in result.stdout.split()[:2])
        expected = self.uid if self.uid is not None else os.geteuid()
        if uid != expected or pid > 3:
            return f"the box did not take (uid {uid}, pid {pid})"
        return None

    # -- running --------------------------------------------------------------------------------
    def command(
        self,
        argv: Sequence[str],
        *,
        read_only: Iterable[tuple[Path, Path]],
        environ: Mapping[str, str],
        socket_dir: Path | None = None,
    ) -> list[str]:
        """`argv` wrapped to run in the box (unchanged when not boxed). `read_only` pairs
        (path, where the box shows it); `socket_dir` (writable) appears at SOCKET_DIR;
        `environ` is the whole environment the command gets."""
        if not self.boxed:
            return list(argv)
        assert self.bwrap is not None
        args = [
            self.bwrap,
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--new-session",
            "--die-with-parent",
            "--hostname",
            "model-host",
        ]
        if self.uid is None:
            args += ["--unshare-user"]
        for top in SYSTEM_DIRS:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--perms", "0755", "--dir", "/etc"]  # bwrap would make it 0700
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for device in sorted(glob.glob("/dev/nvidia*")):  # GPUs, where there are any
            args += ["--dev-bind-try", device, device]
        args += ["--perms", "1777", "--size", str(self.tmp_mb << 20), "--tmpfs", BOX_TMP]
        made: set[Path] = {Path("/"), Path(BOX_TMP)}
        shown = [(p, p) for p in _python_paths() + [Path(p) for p in self.extra_readable]]
        mounts = [
            ("--ro-bind", source, target)
            for source, target in shown + list(read_only)
            if source.exists()
        ] + ([("--bind", socket_dir, Path(SOCKET_DIR))] if socket_dir else [])
        for how, source, target in mounts:
            # bwrap would make the missing parents 0700, closed to the host's uid
            for parent in reversed(target.parents):
                if parent not in made:
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += [how, str(source), str(target)]
        args += ["--chdir", BOX_TMP, "--clearenv"]
        for name, value in {**environ, **self.box_environ()}.items():
            args += ["--setenv", name, value]
        if self.uid is not None:
            # bwrap runs as root to make the mounts (its sources may sit in 0700 directories);
            # setpriv then leaves root for good before the bundle's interpreter starts.
            args += [
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                "--",
                shutil.which("setpriv") or "/usr/bin/setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]
        else:
            args += ["--"]
        return args + list(argv)

    def box_environ(self) -> dict[str, str]:
        """Variables that point a boxed host's libraries at its private, writable /tmp."""
        if not self.boxed:
            return {}
        return {
            "HOME": HOST_HOME,
            "TMPDIR": BOX_TMP,
            "USER": "model-host",
            "LOGNAME": "model-host",
            "XDG_CACHE_HOME": f"{HOST_HOME}/.cache",
            "XDG_CONFIG_HOME": f"{HOST_HOME}/.config",
            "MPLCONFIGDIR": f"{HOST_HOME}/.config/matplotlib",
            "YOLO_CONFIG_DIR": f"{HOST_HOME}/.config/Ultralytics",
        }

    def socket_dir(self, parent: Path) -> Path:
        """A new directory under `parent` only the worker and the host can enter (0700)."""
        path = Path(tempfile.mkdtemp(prefix="host-", dir=parent))
        if self.boxed and self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def make_readable(self, root: Path) -> None:
        """Let the host's uid read `root` (a bundle or an environment) whatever the umask was
        when it was written: files a+r, directories a+rx. Its parents stay closed; the box
        shows `root` itself."""
        if not self.boxed or self.uid is None or not root.exists():
            return
        for dirpath, _dirnames, filenames in os.walk(root):
            _add_mode(Path(dirpath), 0o555)
            for name in filenames:
                _add_mode(Path(dirpath) / name, 0o444)


def _add_mode(path: Path, bits: int) -> None:
    try:
        mode = path.lstat().st_mode
        if (mode & bits) != bits and not path.is_symlink():
            os.chmod(path, (mode & 0o7777) | bits)
    except OSError as exc:  # a file we cannot change is reported by the host that needs it
        log.debug("could not open up %s: %s", path, exc)


def _python_paths() -> list[Path]:
    """The interpreter and the packages a host imports (the engine's site-packages; a bundle
    environment's own packages come in `read_only`)."""
    from engine.hosting.environments import engine_site_dirs

    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix)}
    paths.update(Path(d) for d in engine_site_dirs())
    executable = Path(sys.executable)
    paths.add(executable.resolve().parent.parent)
    # nested paths are covered by their parents' binds
    ordered = sorted(paths, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return kept
