"""Engine and session factories, and the one boundary where database errors become engine errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.db.vectors import register_vector_dumper
from engine.errors import Conflict, InvalidInput, ServiceUnavailable


def sqlalchemy_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as docker and libpq users write them) for psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same URL for psycopg / libpq directly (no SQLAlchemy driver prefix)."""
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


# pgvector's HNSW search width, set for every connection when it opens (no statement per
# search): it meets the recall goal at 100,000 vectors (bench/README.md). Searches that need more
# (k > 100, filtered iterative scans) raise it for their transaction.
HNSW_EF_SEARCH = 100


def connect_options() -> str:
    """libpq `options` of every engine connection: the settings each opens with."""
    return f"-c hnsw.ef_search={HNSW_EF_SEARCH}"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"options": connect_options()},
    )
    event.listen(engine, "connect", _on_connect)
    return engine


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    register_vector_dumper(dbapi_connection)  # vectors are bound in binary (engine/db/vectors)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def database_errors() -> Iterator[None]:
    """Translate database errors, and only here: a lost connection becomes
    `ServiceUnavailable`, an integrity violation that a service did not anticipate `Conflict`,
    a value the database cannot hold (NUL in text, an unpaired surrogate) `InvalidInput`."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(f"The change conflicts with existing data: {exc.orig}") from exc
    except DataError as exc:  # SQLSTATE class 22: a value the database cannot hold or compare
        reason = str(exc.orig or exc).splitlines()[0]
        raise InvalidInput(
            f"A value in the request cannot be stored: {reason}. Remove NUL "
            "characters (\\u0000) and unpaired surrogates (\\ud800-\\udfff) "
            "from text, and keep numbers in range."
        ) from exc
    except UnicodeEncodeError as exc:  # psycopg encoding a parameter as UTF-8
        if "surrogate" not in exc.reason:
            raise
        raise InvalidInput(
            "Text in the request is not valid Unicode (it holds an unpaired "
            "surrogate such as \\ud800); send UTF-8 text."
        ) from exc
    except OperationalError as exc:
        raise ServiceUnavailable("The database is unavailable; retry shortly.") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ServiceUnavailable("The database connection was lost; retry.") from exc
        raise


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error (`database_errors`)."""
    session = factory()
    try:
        with database_errors():
            yield session
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
