"""One image, one answer: a model's detections for an uploaded image, a lake item drawn with
its labels, and signed file URLs (docs/predict.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from annotated_types import Interval
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BeforeValidator

from engine.api.deps import ReadKey, SessionDep, SettingsDep, StorageDep
from engine.api.routing import JSONRoute
from engine.db.session import session_scope
from engine.ids import parse_id
from engine.interop import rendering, signing
from engine.interop.draw import Mark, annotated_jpeg
from engine.jobs import predict as service
from engine.lake.content import open_content
from sdk.schemas_predict import Prediction, SignedUrl

router = APIRouter(tags=["predict"], route_class=JSONRoute)

SIGNED_PREFIX = "/signed/"  # under the API prefix: answered without a key (engine/api/gate.py)
JPEG = "image/jpeg"
MAX_HEADER_JSON = 12_000  # bytes of detections JSON sent in the X-Detections header
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _seconds(value: object) -> object:
    if isinstance(value, str) and parse_id(value) is None:
        raise ValueError("must be a whole number of seconds, written with the digits 0-9 only")
    return value


# A URL's lifetime: 1 second to 7 days, in ASCII digits (as ids, engine/api/params.py).
Seconds = Annotated[int, Interval(ge=1, le=signing.MAX_SECONDS), BeforeValidator(_seconds)]


@router.post(
    "/models/{name}/predict",
    response_model=Prediction,
    responses={200: {"content": {JPEG: {}}, "description": "JSON, or the annotated JPEG"}},
)
async def predict(
    name: str,
    request: Request,
    settings: SettingsDep,
    _: ReadKey,
    image: Annotated[UploadFile, File(description="The image file (JPEG, PNG, ...).")],
    confidence_threshold: Annotated[float, Form()] = 0.5,
    input_resolution: Annotated[int | None, Form()] = None,
) -> Response:
    """The model's detections in `image`, in pixels of the image sent; with `Accept:
    image/jpeg`, the image with them drawn and the same JSON in the `X-Detections` header."""
    data = await image.read()
    result = await run_in_threadpool(
        _predict, request, settings, name, data, confidence_threshold, input_resolution
    )
    (width, height), detections = result.sizes[0], result.detections[0]
    answer = Prediction(
        model=result.model,
        model_version=result.version,
        width=width,
        height=height,
        detections=detections,
    )
    body = answer.model_dump_json()
    if JPEG in request.headers.get("accept", ""):
        marks = [Mark(d.label, d.shape, d.geometry, d.confidence) for d in detections]
        jpeg = await run_in_threadpool(annotated_jpeg, data, marks, min_side=0)
        if len(body) > MAX_HEADER_JSON:  # clients refuse larger headers (h11: 16 KiB in all)
            headers = {"X-Detections-Omitted": f"{len(detections)} detections; ask for JSON"}
        else:
            headers = {"X-Detections": body}
        return Response(jpeg, media_type=JPEG, headers=headers)
    return Response(body, media_type="application/json")


def _predict(
    request: Request,
    settings: SettingsDep,
    name: str,
    data: bytes,
    threshold: float,
    resolution: int | None,
) -> service.PredictionResult:
    service.check_parameters(threshold, resolution)
    service.check_image(settings, data)
    with session_scope(request.app.state.session_factory) as session:  # closed before waiting
        service.predict_model(session, name)
    return service.run_prediction(
        settings,
        name,
        [data],
        confidence_threshold=threshold,
        input_resolution=resolution,
        timeout=settings.predict_timeout,
    )


@router.get(
    "/items/{item}/render", response_class=Response, responses={200: {"content": {JPEG: {}}}}
)
def render_item(
    item: str,
    session: SessionDep,
    storage: StorageDep,
    _: ReadKey,
    sources: Annotated[str | None, Query(description="human, machine or both")] = None,
    min_confidence: float = 0.0,
    include_proposed: bool = False,
) -> Response:
    """The image file `item` (id or unique name) with its stored annotations drawn, as JPEG."""
    rendered = rendering.render_file(
        session=session,
        storage=storage,
        item=item,
        sources=rendering.parse_sources(sources),
        min_confidence=min_confidence,
        include_proposed=include_proposed,
    )
    return Response(
        rendered.jpeg, media_type=JPEG, headers={"X-Annotations": str(rendered.annotations)}
    )


@router.get("/files/{unique_name}/url", response_model=SignedUrl)
def file_url(
    unique_name: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: ReadKey,
    expires_in: Seconds | None = None,
) -> SignedUrl:
    """A URL fetching the file's bytes without a key for `expires_in` seconds
    (METALAKE_SIGNED_URL_SECONDS by default, 7 days at most)."""
    rendering.stored_file(session=session, unique_name=unique_name)  # 404 for an unknown name
    base = settings.public_url or str(request.base_url)
    url, expires = signing.signed_url_until(
        settings, unique_name, expires_in=expires_in, base_url=base
    )
    return SignedUrl(url=url, expires_at=datetime.fromtimestamp(expires, UTC))


@router.api_route(
    SIGNED_PREFIX + "files/{unique_name:path}",
    methods=["GET", "HEAD"],
    response_class=StreamingResponse,
    include_in_schema=False,  # a link the engine hands out, not a call for clients
)
def signed_file(
    unique_name: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    expires: int,
    token: str,
) -> Response:
    """The file's bytes, to whoever holds a signed URL of it that has not expired (no key);
    one `Range: bytes=a-b` is honoured."""
    signing.verify(settings, unique_name, expires, token)  # before anything is read
    found = rendering.stored_file(session=session, unique_name=unique_name)
    headers = {
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(found.name)}",
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={max(0, expires - int(datetime.now(UTC).timestamp()))}",
        "X-Content-Type-Options": "nosniff",
    }
    wanted = _range(request.headers.get("range"), found.size_bytes)
    if wanted is None:
        headers["Content-Length"] = str(found.size_bytes)
        status = 200
    else:
        start, end = wanted
        headers["Content-Length"] = str(end - start + 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{found.size_bytes}"
        status = 206
    if request.method == "HEAD":
        return Response(status_code=status, media_type=found.media_type, headers=headers)
    stream = open_content(found, storage=storage)
    body = stream if wanted is None else _slice(stream, *wanted)
    return StreamingResponse(body, status_code=status, media_type=found.media_type, headers=headers)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single satisfiable `bytes=` range; None: send the whole file."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or size == 0:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        return (max(0, size - int(last)), size - 1) if int(last) > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start > end:
        return None
    return start, end


def _slice(stream: Iterator[bytes], start: int, end: int) -> Iterator[bytes]:
    position = 0
    for chunk in stream:
        lo, hi = max(start - position, 0), min(end + 1 - position, len(chunk))
        if lo < hi:
            yield chunk[lo:hi]
        position += len(chunk)
        if position > end:
            return
