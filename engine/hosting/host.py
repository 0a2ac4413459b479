"""Model hosts: a bundle's code runs in its own process, never in the worker.

`HostManager` (one per worker process, made after a prefork pool has forked and closed when
the process shuts down) starts `serve.py` for a model version on first use, in its requirements'
environment, boxed in where the machine allows, and keeps it for the next chunks. A host that
crashes, times out or outgrows its memory limit is killed and the call raises `ModelHostError`;
docs/bundles.md ("Inside the model host") has the details.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.config import Settings
from engine.errors import (
    ModelHostCrashed,
    ModelHostError,
    ModelHostOutOfMemory,
    ModelHostTimeout,
    ModelLoadFailed,
)
from engine.hosting import serve
from engine.hosting.environments import EnvironmentCache
from engine.hosting.host_process import HostProcess, ping, post, response_error
from engine.hosting.hostenv import host_environ, install_environ, parse_names
from engine.hosting.sandbox import ENV_DIR, MODEL_DIR, SERVE_FILE, SOCKET_DIR, Sandbox

log = logging.getLogger(__name__)
MAX_LOG_BYTES = 10 << 20
LOAD_FAILURE_MEMORY = 60.0  # seconds a failed model_fn is answered from memory


@dataclass(frozen=True)
class HostLimits:
    start_timeout: float = 300
    request_timeout: float = 300
    memory_limit_mb: int = 0  # 0: no limit
    idle_seconds: float = 600
    watch_interval: float = 0.2  # how often memory (and idleness) is checked


@dataclass(frozen=True)
class HostInfo:
    version_key: str
    pid: int
    socket_path: Path
    log_file: Path
    idle_seconds: float
    rss_mb: float
    sandboxed: bool


class HostManager:
    """Starts, reuses, watches and stops the model hosts of one worker process."""

    def __init__(
        self,
        *,
        environments: EnvironmentCache,
        logs_dir: Path,
        run_dir: Path,
        limits: HostLimits,
        environ: Mapping[str, str],
        sandbox: Sandbox | None = None,
    ) -> None:
        self.sandbox = sandbox or Sandbox(boxed=False, reason="no sandbox was set up")
        self._environments = environments
        self._logs_dir = logs_dir
        self._limits = limits
        self._environ = dict(environ)  # already allow-listed: see hostenv.host_environ
        self._hosts: dict[str, HostProcess] = {}
        self._start_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None
        self._run_dir = run_dir  # the hosts' socket directories
        # version key -> (when, error) of its last failed model_fn: a version is immutable,
        # so the next chunks fail at once with that error instead of starting a host again
        self._load_failures: dict[str, tuple[float, ModelLoadFailed]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> HostManager:
        source = dict(os.environ if environ is None else environ)
        if settings.weights_dir is not None:
            source["METALAKE_WEIGHTS_DIR"] = str(settings.weights_path)
        extra = parse_names(settings.host_env_allow)
        environments = EnvironmentCache(
            settings.envs_path,
            environ=install_environ(source, extra=extra),
            install_timeout=settings.env_install_timeout,
        )
        limits = HostLimits(
            start_timeout=settings.host_start_timeout,
            request_timeout=settings.host_request_timeout,
            memory_limit_mb=settings.host_memory_limit_mb,
            idle_seconds=settings.host_idle_seconds,
        )
        sandbox = Sandbox.probe(settings, source)
        if not sandbox.boxed:
            log.warning("%s", sandbox.warning)
        return cls(
            environments=environments,
            logs_dir=settings.host_logs_dir,
            run_dir=settings.run_dir / "hosts",
            limits=limits,
            environ=host_environ(source, extra=extra),
            sandbox=sandbox,
        )

    # -- public -------------------------------------------------------------------------------
    def invoke(
        self,
        version_key: str,
        bundle_dir: Path,
        requirements: str,
        body: bytes,
        content_type: str,
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> bytes:
        """POST one batch to the host of `version_key` (started if needed); the response body.

        Raises a ModelHostError subclass: ModelCodeError (the bundle raised; the host lives
        on), ModelHostCrashed, ModelHostTimeout, ModelHostOutOfMemory (the host was killed; the
        next call starts a new one), ModelLoadFailed, ModelEnvironmentFailed.
        """
        timeout = timeout or self._limits.request_timeout
        self.stop_idle()
        for _ in range(3):  # a host retired between lookup and use is replaced, not reported
            host = self._host_for(version_key, bundle_dir, requirements)
            with host.lock:
                if host.retired or not host.alive():
                    continue
                try:
                    status, payload = post(host.socket_path, body, content_type, accept, timeout)
                except TimeoutError as exc:
                    host.kill(
                        ModelHostTimeout(
                            f"the model host of {version_key} did not answer within {timeout:g} s "
                            f"and was stopped; the batch may be too large or predict_fn stuck "
                            f"(METALAKE_HOST_REQUEST_TIMEOUT)",
                            version_key=version_key,
                            log_file=str(host.log_file),
                        )
                    )
                    self._forget(host)
                    assert host.killed is not None
                    raise host.killed from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._forget(host)
                    raise self._death(host, "while running the batch") from exc
                finally:
                    host.last_used = time.monotonic()
            if status == 200:
                return payload
            raise response_error(host, status, payload)
        raise ModelHostError(
            f"the model host of {version_key} kept stopping before use", version_key=version_key
        )

    def ensure_started(self, version_key: str, bundle_dir: Path, requirements: str) -> HostInfo:
        """Start the host (building its environment) if needed; raise why it cannot run."""
        host = self._host_for(version_key, bundle_dir, requirements)
        return self._info(host)

    def running(self) -> list[HostInfo]:
        with self._lock:
            hosts = list(self._hosts.values())
        return [self._info(host) for host in hosts if host.alive()]

    def stop(self, version_key: str) -> bool:
        with self._lock:
            host = self._hosts.pop(version_key, None)
        if host is None:
            return False
        with host.lock:
            host.stop()
        log.info("stopped the model host of %s", version_key)
        return True

    def stop_idle(self) -> list[str]:
        """Stop hosts unused for longer than the idle time; their version keys."""
        now = time.monotonic()
        with self._lock:
            idle = [
                h for h in self._hosts.values() if now - h.last_used > self._limits.idle_seconds
            ]
        stopped = []
        for host in idle:
            if not host.lock.acquire(blocking=False):
                continue  # busy after all
            try:
                if time.monotonic() - host.last_used <= self._limits.idle_seconds:
                    continue
                host.stop()
                self._forget(host)
                stopped.append(host.version_key)
                log.info(
                    "stopped the model host of %s: idle for more than %g s",
                    host.version_key,
                    self._limits.idle_seconds,
                )
            finally:
                host.lock.release()
        return stopped

    def close(self) -> None:
        """Stop every host and the watcher thread."""
        self._closed.set()
        with self._lock:
            hosts = list(self._hosts.values())
            self._hosts.clear()
        for host in hosts:
            host.stop()
        if self._watcher is not None:
            self._watcher.join(5)

    def __enter__(self) -> HostManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- starting -----------------------------------------------------------------------------
    def _host_for(self, version_key: str, bundle_dir: Path, requirements: str) -> HostProcess:
        with self._lock:
            if self._closed.is_set():
                raise ModelHostError("the host manager is closed", version_key=version_key)
            host = self._hosts.get(version_key)
            if host is not None and host.alive() and not host.retired:
                return host
            start_lock = self._start_locks.setdefault(version_key, threading.Lock())
        failure = self._load_failures.get(version_key)
        if failure is not None:
            when, error = failure
            age = time.monotonic() - when
            if age < LOAD_FAILURE_MEMORY:
                raise ModelLoadFailed(
                    f"{error.message}\n(remembered from {age:.0f} s ago: this worker tries "
                    f"model_fn again {LOAD_FAILURE_MEMORY:g} s after it failed)",
                    **error.details,
                )
        if host is not None:
            reason = host.killed or f"it {host.exit_description()}"
            log.warning("replacing the model host of %s: %s", version_key, reason)
            self._forget(host)
        with start_lock:
            with self._lock:
                current = self._hosts.get(version_key)
                if current is not None and current.alive() and not current.retired:
                    return current
            try:
                host = self._start(version_key, bundle_dir, requirements)
            except ModelLoadFailed as exc:
                self._load_failures[version_key] = (time.monotonic(), exc)
                raise
            with self._lock:
                self._load_failures.pop(version_key, None)
                self._hosts[version_key] = host
                if self._watcher is None:
                    self._watcher = threading.Thread(
                        target=self._watch, daemon=True, name="model-host-watcher"
                    )
                    self._watcher.start()
            return host

    def _start(self, version_key: str, bundle_dir: Path, requirements: str) -> HostProcess:
        sandbox = self.sandbox
        if not sandbox.boxed and sandbox.required:
            raise ModelHostError(
                f"refusing to run the model code of {version_key}: {sandbox.warning} "
                f"(METALAKE_REQUIRE_SANDBOX is set; fix the reason or unset it)",
                version_key=version_key,
            )
        bundle_dir = bundle_dir.resolve()
        code_dir = bundle_dir / "code"
        python = self._environments.python_for(requirements, workdir=code_dir)
        name = re.sub(r"[^A-Za-z0-9_.@-]+", "_", version_key)
        log_file = self._logs_dir / f"{name}.log"
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_dir = sandbox.socket_dir(self._run_dir)
        serve_file = Path(serve.__file__).resolve()
        # the bundle's own environment, unless it runs on the engine's interpreter
        environment = python.parent.parent if python != Path(sys.executable) else None
        # (path here, path in the box): a boxed host sees its bundle where SageMaker puts it
        model_dir, script, inner_dir = bundle_dir, serve_file, socket_dir
        read_only: list[tuple[Path, Path]] = []
        if sandbox.boxed:
            model_dir, script, inner_dir = (Path(MODEL_DIR), Path(SERVE_FILE), Path(SOCKET_DIR))
            read_only = [(bundle_dir, model_dir), (serve_file, script)]
            if environment is not None:
                read_only.append((environment, Path(ENV_DIR)))
                python = Path(ENV_DIR) / python.relative_to(environment)
                sandbox.make_readable(environment)
            sandbox.make_readable(bundle_dir)
        reader, writer = os.pipe()  # the host exits when the worker (holding `writer`) is gone
        argv = [
            str(python),
            "-P",
            str(script),
            "--model-dir",
            str(model_dir),
            "--unix-socket",
            str(inner_dir / "serve.sock"),
            "--parent-fd",
            str(reader),
        ]
        env = {**self._environ, "PYTHONPATH": str(model_dir / "code"), "PYTHONUNBUFFERED": "1"}
        command = sandbox.command(argv, read_only=read_only, environ=env, socket_dir=socket_dir)
        if log_file.exists() and log_file.stat().st_size > MAX_LOG_BYTES:
            log_file.replace(log_file.with_name(log_file.name + ".1"))
        try:
            with log_file.open("ab") as output:
                output.write(
                    f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting the model "
                    f"host of {version_key} ({sandbox.describe()}): "
                    f"{' '.join(argv)}\n".encode()
                )
                output.flush()
                offset = output.tell()
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=bundle_dir,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(reader,),
                )
        except BaseException:
            os.close(writer)
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        finally:
            os.close(reader)
        host = HostProcess(
            version_key,
            process,
            log_file,
            offset,
            socket_path=socket_dir / "serve.sock",
            parent_pipe=writer,
            boxed=sandbox.boxed,
        )
        try:
            self._wait_ready(host)
        except BaseException:
            if host.alive():
                host.kill(ModelHostError("start aborted", version_key=version_key))
            else:
                host.stop()
            raise
        log.info("model host of %s ready: pid %d, %s", version_key, process.pid, sandbox.describe())
        return host

    def _wait_ready(self, host: HostProcess) -> None:
        key, limit = host.version_key, self._limits.start_timeout
        deadline = time.monotonic() + limit
        while True:
            self._check_memory(host)
            if not host.alive():
                raise self._death(host, "while starting")
            if host.socket_path.exists():
                status, document = ping(host.socket_path)
                if status == 200:
                    return
                if document.get("status") == "failed":
                    error = document.get("error") or {}
                    host.stop()
                    raise ModelLoadFailed(
                        f"{error.get('stage', 'model_fn')} failed for {key}: "
                        f"{error.get('message')}\n{error.get('traceback', '')}".rstrip(),
                        version_key=key,
                        log_file=str(host.log_file),
                        traceback=error.get("traceback"),
                    )
            if time.monotonic() > deadline:
                host.kill(
                    ModelHostTimeout(
                        f"the model host of {key} was not ready within {limit:g} s (model_fn still "
                        f"running) and was stopped; METALAKE_HOST_START_TIMEOUT raises the limit. "
                        f"Last lines of {host.log_file}:\n{host.log_tail()}",
                        version_key=key,
                        log_file=str(host.log_file),
                    )
                )
                assert host.killed is not None
                raise host.killed
            time.sleep(0.05)

    # -- watching -----------------------------------------------------------------------------
    def _watch(self) -> None:
        last_idle_check = time.monotonic()
        while not self._closed.wait(self._limits.watch_interval):
            with self._lock:
                hosts = list(self._hosts.values())
            for host in hosts:
                self._check_memory(host)
            if time.monotonic() - last_idle_check >= min(1.0, self._limits.idle_seconds / 2):
                last_idle_check = time.monotonic()
                try:
                    self.stop_idle()
                except Exception:  # the watcher must survive; the next call retries
                    log.exception("stopping idle model hosts failed")

    def _check_memory(self, host: HostProcess) -> None:
        limit_mb = self._limits.memory_limit_mb
        if not limit_mb or host.retired or not host.alive():
            return
        used_mb = host.tree_rss() / (1 << 20)
        if used_mb > limit_mb:
            log.warning(
                "model host of %s uses %.0f MB > %d MB: killing it",
                host.version_key,
                used_mb,
                limit_mb,
            )
            host.kill(
                ModelHostOutOfMemory(
                    f"the model host of {host.version_key} exceeded the memory limit of "
                    f"{limit_mb} MB (it used {used_mb:.0f} MB) and was stopped; use smaller "
                    f"batches or raise METALAKE_HOST_MEMORY_LIMIT_MB",
                    version_key=host.version_key,
                    log_file=str(host.log_file),
                    limit_mb=limit_mb,
                    used_mb=round(used_mb),
                )
            )

    # -- helpers ------------------------------------------------------------------------------
    def _forget(self, host: HostProcess) -> None:
        host.retired = True
        with self._lock:
            if self._hosts.get(host.version_key) is host:
                del self._hosts[host.version_key]

    def _death(self, host: HostProcess, when: str) -> ModelHostError:
        """The error for a host that went away (or stopped answering)."""
        try:
            host.process.wait(5)
        except subprocess.TimeoutExpired:
            host.kill(ModelHostCrashed("stopped answering", version_key=host.version_key))
        if host.killed is not None and not isinstance(host.killed, ModelHostCrashed):
            return host.killed
        return ModelHostCrashed(
            f"the model host of {host.version_key} {host.exit_description()} {when}; last "
            f"lines of {host.log_file}:\n{host.log_tail()}",
            version_key=host.version_key,
            log_file=str(host.log_file),
            exit_code=host.process.returncode,
        )

    def _info(self, host: HostProcess) -> HostInfo:
        return HostInfo(
            host.version_key,
            host.process.pid,
            host.socket_path,
            host.log_file,
            time.monotonic() - host.last_used,
            host.tree_rss() / (1 << 20),
            self.sandbox.boxed,
        )
