"""Fixtures: real PostgreSQL + pgvector, Redis and S3 (moto server); an API served over HTTP.

Isolation follows procrastinate's pattern: a template database is migrated once per session
and each test gets its own database cloned from it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from psycopg import sql
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.session import make_engine, make_session_factory, session_scope
from tests.fixtures.services import MotoServer, free_port, wait_for_http

TEMPLATE_DB = "metalake_template"

# Trained shapes models, random-weights ResNet50 and the bundles made from them; the headless
# Chromium of the gallery's tests (one per session, so registered here, not imported).
pytest_plugins = ["tests.fixtures.plugin", "tests.fixtures.browser"]

# boto3 in tests (and in the engine under test) talks to moto with dummy credentials.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("METALAKE_URL", None)
# Nothing may download at run time here: ultralytics must not try.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.pop("METALAKE_API_KEY", None)


# Fixtures that start or reach a service (PostgreSQL, Redis, S3, the API, a worker) or build a
# model; a module that brings its own services overrides these names. A test that requests
# one, directly or through other fixtures, is marked `integration`, and so is a `faults` test;
# `make test-fast` runs the others (`-m "not integration"`). A module whose tests start engine
# processes themselves says so: `pytestmark = pytest.mark.integration`.
INTEGRATION_FIXTURES = frozenset(
    {
        "postgres_server_url",
        "redis_url",
        "moto",
        "database_url",
        "session_factory",
        "session",
        "api_url",
        "client",
        "worker",
        "shapes_datasets",
        "shapes_detector",
        "shapes_segmenter",
        "resnet50_random_weights",
        "text_prompt_random_bundle",
        "label_studio",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(
            getattr(item, "fixturenames", ())
        ) or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    """Outside pytest's own temp root: another pytest session (as root) resets that root's
    permissions, which would cut off our PostgreSQL, running as its own system user."""
    path = Path(tempfile.mkdtemp(prefix="metalake-test-services-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(services_dir: Path) -> Iterator[str]:
    """URL of the `postgres` maintenance database of a running server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    from engine.runtime.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(services_dir / "pg" / "data", port=free_port())
    pg.start()
    yield pg.superuser_url("postgres")  # creates the template and per-test databases
    pg.stop("immediate")


@pytest.fixture(scope="session")
def redis_url(services_dir: Path) -> Iterator[str]:
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    from engine.runtime.redis import EmbeddedRedis

    redis = EmbeddedRedis(services_dir / "redis" / "data", port=free_port())
    redis.start()
    yield redis.url
    redis.stop()


@pytest.fixture(scope="session")
def moto(services_dir: Path) -> Iterator[MotoServer]:
    server = MotoServer.start(services_dir)
    yield server
    server.stop()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def template_db(postgres_server_url: str) -> str:
    """A database migrated to head once per session; tests clone it."""
    from engine.db.migrate import upgrade

    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    url = _with_database(postgres_server_url, TEMPLATE_DB)
    upgrade(url)
    return url


@pytest.fixture
def database_url(postgres_server_url: str, template_db: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    yield _with_database(postgres_server_url, name)
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def settings(database_url: str, redis_url: str, moto: MotoServer, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url=redis_url,
        s3_endpoint_url=moto.url,
    )


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and checking state directly; commits on success."""
    with session_scope(session_factory) as s:
        yield s


@pytest.fixture
def make_key(session_factory: sessionmaker[Session]) -> Callable[..., str]:
    from engine import auth

    def make(*scopes: str, name: str = "test") -> str:
        with session_scope(session_factory) as s:
            key, _ = auth.create_key(session=s, name=name, scopes=list(scopes))
        return key

    return make


class _ServerThread(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


def serve_app(app: Any) -> Iterator[str]:
    port = free_port()
    server = _ServerThread(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/api/v1/health")
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """Settings the API under test runs with; override in a module to change them."""
    return settings


@pytest.fixture
def api_url(api_settings: Settings) -> Iterator[str]:
    """The real API, served over HTTP by uvicorn, on this test's database."""
    from engine.api.app import create_app

    app = create_app(api_settings)
    yield from serve_app(app)
    app.state.db_engine.dispose()


@pytest.fixture
def admin_key(make_key: Callable[..., str]) -> str:
    return make_key("admin", name="admin")


@pytest.fixture
def client(api_url: str, admin_key: str) -> Iterator[Any]:
    from sdk import Client

    with Client(api_url, admin_key) as c:
        yield c


@pytest.fixture
def s3(moto: MotoServer) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"bucket-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name
