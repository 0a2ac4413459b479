"""`metalake up | down | status`: the whole engine on one machine, as background processes.

`up` starts what is not yet running (embedded PostgreSQL and Redis unless DATABASE_URL /
REDIS_URL are set, then migrations, the API and one Celery worker), waits until each answers,
and leaves an admin key for the SDK in `client.json`. Running it twice starts nothing twice.
`down` stops only what `up` started. Everything lives under `Settings.home`.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.config import Settings
from engine.errors import EngineError, ServiceUnavailable
from engine.interop.signing import signing_keys
from engine.runtime import checks
from engine.runtime.postgres import traverse_gid
from engine.runtime.private import masked_url, private_dir
from engine.runtime.processes import ManagedProcess, port_in_use
from engine.runtime.state import (
    EngineState,
    current_state,
    embedded_postgres,
    embedded_redis,
    load_state,
    managed_process,
    read_client_file,
    save_state,
    write_client_file,
)

Echo = Callable[[str], None]
SERVICES = ("postgres", "redis", "api", "worker")
ADMIN_KEY_NAME = "metalake up (admin)"


class StartupFailed(ServiceUnavailable):
    """A service of the local engine did not start; its log says why."""

    code = "startup_failed"


class PortInUse(StartupFailed):
    """The port is taken by a process that is not part of this engine."""

    code = "port_in_use"


@dataclass(frozen=True)
class UpResult:
    url: str
    home: Path
    logs_dir: Path
    client_file: Path
    started: list[str]  # services this call started (empty when everything already ran)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str  # where it listens, or why it is unhealthy
    embedded: bool = True  # False: an external service (DATABASE_URL / REDIS_URL) we only probe

    @property
    def ok(self) -> bool:
        return self.running and self.healthy


def _quiet(_: str) -> None:
    pass


# -- up ------------------------------------------------------------------------------------
def up(settings: Settings, *, echo: Echo = _quiet, timeout: float = 90) -> UpResult:
    """Start the local engine (idempotent) and return where it is."""
    # Only the engine's user may enter the home (as root, also the user PostgreSQL runs as).
    postgres_gid = traverse_gid() if settings.database_url is None else None
    private_dir(settings.home, traverse_gid=postgres_gid)
    private_dir(settings.logs_dir, traverse_gid=postgres_gid)
    private_dir(settings.run_dir)
    with _lock(settings):
        _ensure_passwords(settings)
        state = EngineState.from_settings(settings)
        _refuse_reconfiguring_a_running_engine(settings, state)
        started: list[str] = []
        if state.embedded_postgres and _start_postgres(settings, echo, timeout):
            started.append("postgres")
        if state.embedded_redis and _start_redis(settings, echo, timeout):
            started.append("redis")
        save_state(settings, state)
        resolved = state.settings(settings)
        _migrate(state.database_url, echo)
        env = child_environment(resolved)
        api, worker = managed_process(settings, "api"), managed_process(settings, "worker")
        if _ensure_running(api, _api_argv(settings), env, settings, echo, port=settings.api_port):
            started.append("api")
        if _ensure_running(worker, _worker_argv(state), env, settings, echo):
            started.append("worker")
        _wait_until(
            api,
            lambda: checks.api_problem(state.api_url),
            timeout,
            f"the API at {state.api_url} to answer /api/v1/health",
        )
        _wait_until(
            worker,
            lambda: checks.worker_problem(resolved, state.worker_name),
            timeout,
            f"worker {state.worker_name} to answer a Celery ping",
        )
        _ensure_admin_key(settings, state, echo)
    return UpResult(
        url=state.api_url,
        home=settings.home,
        logs_dir=settings.logs_dir,
        client_file=settings.client_file,
        started=started,
    )


def _ensure_passwords(settings: Settings) -> None:
    """The embedded services' passwords exist before their URLs are resolved, and the key
    signing file URLs before the API starts (<home>/signing.key, 0600; docs/predict.md)."""
    if settings.database_url is None:
        embedded_postgres(settings).ensure_passwords()
    if settings.redis_url is None:
        embedded_redis(settings).ensure_password()
    if settings.signing_key is None:
        signing_keys(settings)


def _refuse_reconfiguring_a_running_engine(settings: Settings, state: EngineState) -> None:
    previous = load_state(settings)
    if previous is None or previous == state:
        return
    running = [
        managed_process(settings, "api").pid(),
        managed_process(settings, "worker").pid(),
        previous.embedded_postgres and embedded_postgres(settings, previous.pg_port).pid(),
        previous.embedded_redis and embedded_redis(settings, previous.redis_port).pid(),
    ]
    if not any(running):
        return
    changed = (
        ", ".join(
            f"{name} {getattr(previous, name)!r} -> {getattr(state, name)!r}"
            for name in EngineState.model_fields
            if name not in ("database_url", "redis_url")  # may hold passwords
            and getattr(previous, name) != getattr(state, name)
        )
        or "DATABASE_URL / REDIS_URL, or its embedded services' passwords"
    )
    raise EngineError(
        f"The engine in {settings.home} is running with another configuration ({changed}). "
        "Stop it first with `metalake down`, or keep the settings it was started with."
    )


def _start_postgres(settings: Settings, echo: Echo, timeout: float) -> bool:
    pg = embedded_postgres(settings)
    pid = pg.pid()
    if pid is not None:
        pg.wait_ready(timeout)
        echo(f"postgres  already running (pid {pid}) on {pg.host}:{pg.port}")
        return False
    if port_in_use(pg.port, pg.host):
        raise PortInUse(
            f"Port {pg.port} (embedded PostgreSQL) is used by another program. "
            "Set METALAKE_PG_PORT to a free port, or DATABASE_URL to use that "
            "server.",
            port=pg.port,
        )
    echo(f"postgres  starting on {pg.host}:{pg.port} (data: {pg.data_dir})")
    pg.start(timeout=timeout)
    return True


def _start_redis(settings: Settings, echo: Echo, timeout: float) -> bool:
    redis = embedded_redis(settings)
    pid = redis.pid()
    if pid is not None:
        redis.wait_ready(timeout)
        echo(f"redis     already running (pid {pid}) on {redis.host}:{redis.port}")
        return False
    if port_in_use(redis.port, redis.host):
        raise PortInUse(
            f"Port {redis.port} (embedded Redis) is used by another program. "
            "Set METALAKE_REDIS_PORT to a free port, or REDIS_URL to use that "
            "server.",
            port=redis.port,
        )
    echo(f"redis     starting on {redis.host}:{redis.port} (data: {redis.data_dir})")
    redis.start(timeout=timeout)
    return True


def _migrate(database_url: str, echo: Echo) -> None:
    from engine.db.migrate import upgrade

    echo("database  applying migrations")
    try:
        upgrade(database_url)
    except EngineError:
        raise
    except Exception as exc:
        raise StartupFailed(f"Migrating the database failed: {checks.first_line(exc)}") from exc


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment plus every setting, so children build the same Settings."""
    env = dict(os.environ)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[f"METALAKE_{name.upper()}"] = str(value)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return env


def _api_argv(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "engine.api.app:app_from_env",
        "--host",
        settings.api_host,
        "--port",
        str(settings.api_port),
        "--log-level",
        settings.log_level.lower(),
    ]


def _worker_argv(state: EngineState) -> list[str]:
    return [sys.executable, "-m", "engine.cli", "worker", "--hostname", state.worker_name]


def _ensure_running(
    process: ManagedProcess,
    argv: list[str],
    env: dict[str, str],
    settings: Settings,
    echo: Echo,
    *,
    port: int | None = None,
) -> bool:
    """Start `process` unless it already runs; returns whether it was started."""
    pid = process.pid()
    if pid is not None:
        echo(f"{process.name:<9} already running (pid {pid})")
        return False
    if process.clear_stale_pid_file():
        echo(f"{process.name:<9} removed a stale pid file")
    if port is not None and port_in_use(port):
        raise PortInUse(
            f"Port {port} ({process.name}) is used by another program. Set "
            f"METALAKE_{process.name.upper()}_PORT to a free port.",
            port=port,
        )
    pid = process.spawn(argv, env=env, cwd=settings.home)
    echo(f"{process.name:<9} started (pid {pid}, log: {process.log_file})")
    return True


def _wait_until(
    process: ManagedProcess, problem: Callable[[], str | None], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        reason = problem()
        if reason is None:
            return
        if not process.is_running():
            process.clear_stale_pid_file()
            raise StartupFailed(
                f"The {process.name} exited while waiting for {what}; {process.exit_reason()}"
            )
        if time.monotonic() > deadline:
            raise StartupFailed(
                f"Timed out after {timeout:.0f}s waiting for {what} ({reason}); "
                f"see {process.log_file}"
            )
        time.sleep(0.3)


def _ensure_admin_key(settings: Settings, state: EngineState, echo: Echo) -> None:
    """Keep the admin key in client.json if it still authenticates, else create one."""
    from engine import auth
    from engine.db.session import make_engine, make_session_factory, session_scope
    from engine.errors import Unauthorized

    existing = read_client_file(settings).get("api_key")
    db_engine = make_engine(state.database_url, pool_size=1)
    try:
        with session_scope(make_session_factory(db_engine)) as session:
            key: str | None = None
            if existing:
                try:
                    if auth.authenticate(session=session, key=existing).has("admin"):
                        key = existing
                except Unauthorized:
                    pass
            if key is None:
                key, _ = auth.create_key(session=session, name=ADMIN_KEY_NAME, scopes=["admin"])
                echo(f"keys      created an admin API key (in {settings.client_file})")
    finally:
        db_engine.dispose()
    write_client_file(settings, url=state.api_url, api_key=key)


# -- down ----------------------------------------------------------------------------------
def down(settings: Settings, *, echo: Echo = _quiet, timeout: float = 30) -> list[str]:
    """Stop the worker, the API, then the embedded Redis and PostgreSQL. Returns what stopped."""
    state = current_state(settings)
    stopped: list[str] = []
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with _lock(settings):
        for name in ("worker", "api"):
            process = managed_process(settings, name)
            pid = process.pid()
            if process.stop(timeout=timeout):
                echo(f"{name:<9} stopped (pid {pid})")
                stopped.append(name)
        if state.embedded_redis:
            redis = embedded_redis(settings, state.redis_port)
            pid = redis.pid()
            redis.stop(timeout=timeout)
            if pid is not None:
                echo(f"redis     stopped (pid {pid})")
                stopped.append("redis")
        if state.embedded_postgres:
            pg = embedded_postgres(settings, state.pg_port)
            pid = pg.pid()
            if pid is not None:
                pg.stop("fast")
                echo(f"postgres  stopped (pid {pid})")
                stopped.append("postgres")
    if not stopped:
        echo(f"nothing was running (home: {settings.home})")
    return stopped


# -- status --------------------------------------------------------------------------------
def status(settings: Settings) -> list[ServiceStatus]:
    """One entry per service (postgres, redis, api, worker): pid, running, healthy."""
    state = current_state(settings)
    resolved = state.settings(settings)
    return [
        _status_of_postgres(settings, state),
        _status_of_redis(settings, state),
        _status_of_process(
            managed_process(settings, "api"),
            state.api_url,
            lambda: checks.api_problem(state.api_url),
        ),
        _status_of_process(
            managed_process(settings, "worker"),
            state.worker_name,
            lambda: checks.worker_problem(resolved, state.worker_name),
        ),
    ]


def _status_of_postgres(settings: Settings, state: EngineState) -> ServiceStatus:
    shown = masked_url(state.database_url)
    if not state.embedded_postgres:
        problem = checks.postgres_problem(state.database_url)
        return ServiceStatus(
            "postgres", None, problem is None, problem is None, problem or shown, embedded=False
        )
    pid = embedded_postgres(settings, state.pg_port).pid()
    problem = checks.postgres_problem(state.database_url) if pid else "not running"
    return ServiceStatus("postgres", pid, pid is not None, problem is None, problem or shown)


def _status_of_redis(settings: Settings, state: EngineState) -> ServiceStatus:
    shown = masked_url(state.redis_url)
    if not state.embedded_redis:
        problem = checks.redis_problem(state.redis_url)
        return ServiceStatus(
            "redis", None, problem is None, problem is None, problem or shown, embedded=False
        )
    pid = embedded_redis(settings, state.redis_port).pid()
    problem = checks.redis_problem(state.redis_url) if pid else "not running"
    return ServiceStatus("redis", pid, pid is not None, problem is None, problem or shown)


def _status_of_process(
    process: ManagedProcess, where: str, problem_of: Callable[[], str | None]
) -> ServiceStatus:
    pid = process.pid()
    if pid is None:
        stale = " (stale pid file)" if process.pid_file.exists() else ""
        return ServiceStatus(process.name, None, False, False, f"not running{stale}")
    problem = problem_of()
    return ServiceStatus(process.name, pid, True, problem is None, problem or where)


@contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    """One `up` or `down` at a time per home directory."""
    private_dir(settings.run_dir)
    with (settings.run_dir / "supervisor.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
