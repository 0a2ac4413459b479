"""Health probes of the engine's services. Each returns None when healthy, else the reason."""

from __future__ import annotations

from engine.config import Settings


def postgres_problem(database_url: str, *, timeout: float = 3) -> str | None:
    import psycopg

    from engine.db.session import libpq_url

    try:
        with psycopg.connect(libpq_url(database_url), connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"SQL ping failed: {first_line(exc)}"
    return None


def redis_problem(redis_url: str, *, timeout: float = 3) -> str | None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if not client.ping():
            return "PING got no PONG"
    except redis.RedisError as exc:
        return f"PING failed: {first_line(exc)}"
    finally:
        client.close()
    return None


def api_problem(api_url: str, *, timeout: float = 3) -> str | None:
    import httpx

    try:
        response = httpx.get(f"{api_url}/api/v1/health", timeout=timeout)
    except httpx.HTTPError as exc:
        return f"/health unreachable: {first_line(exc)}"
    if response.status_code != 200:
        return f"/health answered {response.status_code}: {response.text[:200]}"
    return None


def worker_problem(settings: Settings, worker_name: str, *, timeout: float = 2) -> str | None:
    """Celery `ping` to one worker node, through the broker in `settings.redis_url`."""
    from engine.jobs.celery_app import create_celery

    app = create_celery(settings)
    try:
        replies = app.control.ping(destination=[worker_name], timeout=timeout)
    except Exception as exc:  # kombu raises many transport-specific errors
        return f"Celery ping failed: {first_line(exc)}"
    finally:
        app.close()
    if not any(worker_name in reply for reply in replies):
        return f"no answer to a Celery ping from {worker_name}"
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
