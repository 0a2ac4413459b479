"""The API's route class: request bodies parsed by pydantic-core instead of the json module.

A 2048-d query vector is ~40 KB of JSON, which pydantic-core's `from_json` parses several
times faster than `json.loads` (the similarity search's latency goal: bench/README.md). Anything
`from_json` refuses (malformed JSON, a lone surrogate escape such as "\\ud800") is parsed again
by `json.loads`, so errors and results stay exactly what FastAPI gives by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

from engine.textformats import depth_exceeds, not_json, too_deep

# pydantic-core's parser refuses JSON nested deeper than this; the json module's fallback is
# held to the same depth (it would go to ~1,000 and then raise RecursionError).
BODY_MAX_DEPTH = 200
BODY = "The request body"


class FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = from_json(body)
            except ValueError as exc:
                if "recursion limit exceeded" in str(exc):
                    raise too_deep(BODY, BODY_MAX_DEPTH) from exc
                try:
                    self._json = json.loads(body)  # the json module's own error and position
                except RecursionError as deep:
                    raise too_deep(BODY, BODY_MAX_DEPTH) from deep
                except json.JSONDecodeError:
                    raise  # FastAPI's 422 naming the position
                except ValueError as other:  # not UTF-8, a number of over 4,300 digits
                    raise not_json(BODY, other) from other
                if depth_exceeds(self._json, BODY_MAX_DEPTH):
                    raise too_deep(BODY, BODY_MAX_DEPTH) from None
        return self._json


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(FastJSONRequest(request.scope, request.receive))

        return route_handler
