"""One image through a model (`predict`), a lake item drawn (`render_item`), signed file
URLs (`get_downloadable_url`)."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from sdk._base import BaseClient
from sdk.errors import EngineUnreachable, error_for

PREDICT_TIMEOUT = 130.0  # the engine waits up to 100 s for a worker's answer


class PredictCalls(BaseClient):
    def predict(
        self,
        image_path: str | Path,
        model_id: str,
        confidence_threshold: float = 0.5,
        input_resolution: int | None = None,
        annotated_path: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        """The detections of the detection (autotagging) model `model_id` (`name` or
        `name@N`) in the image file `image_path`, in pixels of that image: dicts with `label`,
        `shape` (box or polygon), `geometry`, `box` [x1, y1, x2, y2] and `confidence`. With
        `annotated_path`, the image with the detections drawn is written there (JPEG)."""
        path = Path(image_path)
        data = path.read_bytes()
        form: dict[str, str] = {"confidence_threshold": repr(float(confidence_threshold))}
        if input_resolution is not None:
            form["input_resolution"] = str(input_resolution)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        accept = "image/jpeg" if annotated_path is not None else "application/json"
        response = self._raw(
            "POST",
            f"/models/{quote(model_id, safe='@')}/predict",
            files={"image": (path.name, data, media)},
            data=form,
            headers={"Accept": accept},
            timeout=PREDICT_TIMEOUT,
        )
        if annotated_path is None:
            answer = response.json()
        else:
            Path(annotated_path).write_bytes(response.content)
            header = response.headers.get("X-Detections")
            if header is None:  # too many detections for a header: the JSON answer
                return self.predict(path, model_id, confidence_threshold, input_resolution)
            answer = json.loads(header)
        detections: list[dict[str, Any]] = answer["detections"]
        return detections

    def render_item(
        self,
        unique_name_or_id: str | int,
        path: str | Path,
        sources: Iterable[str] = ("machine", "human"),
        min_confidence: float = 0.0,
        include_proposed: bool = False,
    ) -> Path:
        """Write the lake image `unique_name_or_id` with its stored annotations of `sources`
        drawn (machine ones at or above `min_confidence`) to `path` as JPEG; returns `path`."""
        item = quote(str(unique_name_or_id), safe="")
        response = self._raw(
            "GET",
            f"/items/{item}/render",
            params={
                "sources": ",".join(sources),
                "min_confidence": min_confidence,
                "include_proposed": include_proposed,
            },
        )
        target = Path(path)
        target.write_bytes(response.content)
        return target

    def get_downloadable_url(self, unique_name: str, expires_in: int | None = None) -> str:
        """A URL anyone can fetch the file's bytes from, without a key, until it expires
        (`expires_in` seconds; the engine's default, an hour, when None; 7 days at most)."""
        params = {} if expires_in is None else {"expires_in": expires_in}
        answer = self._get(f"/files/{quote(unique_name, safe='')}/url", params=params)
        url: str = answer["url"]
        return url

    def _raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response of a call answering bytes (an image); errors as the JSON calls."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise EngineUnreachable(
                f"Cannot reach the engine at {self.url}: {exc}. Is it running? (`metalake status`)"
            ) from exc
        if response.is_error:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise error_for(response.status_code, body)
        return response
