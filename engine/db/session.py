"""Engine and session factories, and the one boundary where database errors become engine errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import Conflict, EngineError, ServiceUnavailable


def sqlalchemy_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as docker and libpq users write them) for psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=10, pool_pre_ping=True
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    Database errors are translated here and nowhere else: a lost connection becomes
    `ServiceUnavailable`, an integrity violation that a service did not anticipate `Conflict`.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except EngineError:
        session.rollback()
        raise
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"The change conflicts with existing data: {exc.orig}") from exc
    except OperationalError as exc:
        session.rollback()
        raise ServiceUnavailable("The database is unavailable; retry shortly.") from exc
    except DBAPIError as exc:
        session.rollback()
        if exc.connection_invalidated:
            raise ServiceUnavailable("The database connection was lost; retry.") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
