"""What `metalake up` started and where, kept under METALAKE_HOME.

`run/state.json` records the resolved URLs and which services are embedded, so `down`,
`status` and `keys` act on the engine that was started even if the environment they run
in differs (another port variable, DATABASE_URL unset in this shell). `client.json` holds the
URL and admin key the SDK and CLI pick up. Both are 0600: the URLs carry passwords.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

from pydantic import BaseModel, ValidationError

from engine.config import Settings
from engine.runtime.postgres import EmbeddedPostgres, shared_buffers
from engine.runtime.processes import ManagedProcess, write_private
from engine.runtime.redis import EmbeddedRedis


class EngineState(BaseModel):
    """The resolved layout of a local engine (written by `up`, read by the other commands)."""

    database_url: str
    redis_url: str
    api_url: str
    embedded_postgres: bool
    embedded_redis: bool
    pg_port: int
    redis_port: int
    worker_name: str

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineState:
        """The layout `up` would produce with these settings (embedded where no URL is set)."""
        pg = embedded_postgres(settings)
        redis = embedded_redis(settings)
        return cls(
            database_url=settings.database_url or pg.url(),
            redis_url=settings.redis_url or redis.url,
            api_url=api_url(settings),
            embedded_postgres=settings.database_url is None,
            embedded_redis=settings.redis_url is None,
            pg_port=settings.pg_port,
            redis_port=settings.redis_port,
            worker_name=worker_name(settings),
        )

    def settings(self, settings: Settings) -> Settings:
        """`settings` with the resolved database and broker URLs filled in."""
        return settings.model_copy(
            update={"database_url": self.database_url, "redis_url": self.redis_url}
        )


def worker_name(settings: Settings) -> str:
    """The Celery node name of this home's worker: unique per home, so engines sharing one
    external Redis never answer each other's pings."""
    digest = hashlib.sha256(str(settings.home).encode()).hexdigest()[:8]
    return f"metalake-{digest}@{socket.gethostname()}"


def state_file(settings: Settings) -> Path:
    return settings.run_dir / "state.json"


def load_state(settings: Settings) -> EngineState | None:
    try:
        return EngineState.model_validate_json(state_file(settings).read_text())
    except (OSError, ValidationError):
        return None


def current_state(settings: Settings) -> EngineState:
    """The state recorded by the last `up`, else what these settings describe."""
    return load_state(settings) or EngineState.from_settings(settings)


def save_state(settings: Settings, state: EngineState) -> None:
    write_private(state_file(settings), state.model_dump_json(indent=2) + "\n")


def api_url(settings: Settings) -> str:
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 — a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def embedded_postgres(settings: Settings, port: int | None = None) -> EmbeddedPostgres:
    return EmbeddedPostgres(
        settings.home / "postgres" / "data",
        port=port or settings.pg_port,
        log_path=settings.logs_dir / "postgres.log",
        shared_buffers=shared_buffers(settings.pg_shared_buffers),
        home=settings.home,
    )


def embedded_redis(settings: Settings, port: int | None = None) -> EmbeddedRedis:
    return EmbeddedRedis(
        settings.home / "redis",
        port=port or settings.redis_port,
        log_path=settings.logs_dir / "redis.log",
    )


def managed_process(settings: Settings, name: str) -> ManagedProcess:
    """The API or worker process of the engine under `settings.home`."""
    return ManagedProcess(
        name,
        settings.run_dir / f"{name}.pid",
        settings.logs_dir / f"{name}.log",
        tag=f"{name}@{settings.home}",
    )


# -- client.json ---------------------------------------------------------------------------
def read_client_file(settings: Settings) -> dict[str, str]:
    try:
        data = json.loads(settings.client_file.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def write_client_file(settings: Settings, *, url: str, api_key: str) -> None:
    write_private(
        settings.client_file, json.dumps({"url": url, "api_key": api_key}, indent=2) + "\n"
    )
