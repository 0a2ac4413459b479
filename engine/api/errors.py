"""The one place errors become HTTP responses: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import EngineError
from sdk.schemas import input_error

log = logging.getLogger("engine.api")


# An error may quote the request (a name, a query, a document's values): whatever a route put
# in it, a body stays a few KB. Longer text ends in "…"; longer lists are cut.
MAX_MESSAGE = 2000  # characters of `message`
MAX_TEXT = 1000  # characters of one string in `details`
MAX_ITEMS = 100  # entries of one list or mapping in `details`
MAX_LEVELS = 8  # nesting of `details`
DETAILS_BUDGET = 8000  # characters (and entries) of all of `details`


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": _cut(message, MAX_MESSAGE),
            "details": _jsonable(details or {}, [DETAILS_BUDGET]),
        }
    }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit, 0)] + "…"


def _jsonable(value: Any, budget: list[int], level: int = 0) -> Any:
    """`value` as JSON, spending `budget[0]` on its characters and entries."""
    budget[0] -= 1
    if isinstance(value, dict | list | tuple):
        if level >= MAX_LEVELS:
            return "…"
        items = list(value.items() if isinstance(value, dict) else enumerate(value))
        kept = []
        for key, item in items[:MAX_ITEMS]:
            if budget[0] <= 0:
                break
            name = _cut(str(key), min(MAX_TEXT, budget[0]))
            budget[0] -= len(name)
            kept.append((name, _jsonable(item, budget, level + 1)))
        if isinstance(value, dict):
            return dict(kept)
        return [item for _, item in kept]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and abs(value) >= 10**30:  # str() refuses past 4,300 digits
        return f"(a number of about {int(value.bit_length() * 0.30103):,} digits)"
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = _cut(str(value), min(MAX_TEXT, budget[0]))
    budget[0] -= len(text)
    return text


class ErrorResponse(JSONResponse):
    """An error body as ASCII JSON: an error may quote the request's own text, which can hold
    an unpaired surrogate (`"\\ud800"` is valid JSON) that UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return ErrorResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        refused = input_error(list(exc.errors()))
        if refused is not None:  # a job parameter against its rule: the engine's 400
            code, message, details = refused
            return ErrorResponse(error_body(code, message, details), status_code=400)
        problems = [
            {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg")}
            for err in exc.errors()[:MAX_ITEMS]
        ]
        summary = "; ".join(f"{p['location']}: {p['message']}" for p in problems[:5])
        return ErrorResponse(
            error_body(
                "validation_error", f"The request is malformed: {summary}", {"errors": problems}
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, EngineError):  # FastAPI's "error parsing the body" 400
            return await engine_error(request, exc.__cause__)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ErrorResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error in %s %s", request.method, request.url.path)
        return ErrorResponse(
            error_body("internal_error", "The engine hit an unexpected error; it has been logged."),
            status_code=500,
        )
