"""The gallery's routes under /ui/: the grid, an item, images and thumbnails; sign-in
(signin.py) and the jobs pages (job_pages.py) are included.

The API key gate lets /ui/ through (engine/api/app.py); every route here but sign-in and the
static files checks the browser's session itself: a page without one redirects to sign-in,
anything else answers 401. Writes need a write key and the session's CSRF token.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.session import session_scope
from engine.errors import EngineError, InvalidInput, InvalidQuery
from engine.lake import items as lake_items
from engine.lake import tags as lake_tags
from engine.lake.content import open_content
from engine.storage import Storage
from engine.ui import gallery, job_pages, signin, similar, thumbnails
from engine.ui.pages import (
    PREFIX,
    error_page,
    no_session,
    page_write,
    pages_of,
    to_signin,
    visitor_of,
)
from engine.ui.sessions import Visitor

STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}

router = APIRouter(prefix=PREFIX, include_in_schema=False)
router.include_router(signin.router)
router.include_router(job_pages.router)

Sort = Annotated[gallery.Sort, Query(description="name, date, size or score")]
Order = Annotated[gallery.Order, Query(description="asc or desc")]
FileId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a lake file's id")]


def _search_query(search: gallery.Search, **extra: Any) -> str:
    params: dict[str, Any] = {"sort": search.sort, "order": search.order}
    if search.query:
        params["q"] = search.query
    params.update(extra)
    return urlencode(params)


# -- the grid ------------------------------------------------------------------------------


@router.get("", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse(PREFIX + "/", status_code=308)


@router.get("/", response_class=HTMLResponse)
def grid(
    request: Request,
    q: Annotated[str, Query(max_length=10_000)] = "",
    sort: Sort = "date",
    order: Order = "desc",
) -> Response:
    search = gallery.Search(query=q.strip(), sort=sort, order=order)
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return to_signin(request)
        try:
            conditions = search.conditions(session)
        except InvalidQuery as bad:
            return pages_of(request).render(
                "grid.html",
                status_code=bad.status_code,
                visitor=visitor,
                search=search,
                query_error=bad,
                total=0,
                cards=[],
                facets=None,
                more=None,
                search_query=_search_query(search),
            )
        except EngineError as refused:
            return error_page(request, refused, visitor)
        total = gallery.count(session=session, conditions=conditions)
        cards = gallery.cards(session=session, search=search, conditions=conditions, page=0)
        facets = gallery.facets(session=session, conditions=conditions, total=total)
    return pages_of(request).render(
        "grid.html",
        visitor=visitor,
        search=search,
        query_error=None,
        total=total,
        cards=cards,
        facets=facets,
        more=_more(search, 0, total),
        search_query=_search_query(search),
    )


def _more(search: gallery.Search, page: int, total: int) -> str | None:
    """The URL of the cards after page `page`, or None after the last."""
    if (page + 1) * gallery.PAGE_SIZE >= total:
        return None
    return f"{PREFIX}/cards?{_search_query(search, page=page + 1)}"


@router.get("/cards", response_class=HTMLResponse)
def more_cards(
    request: Request,
    q: Annotated[str, Query(max_length=10_000)] = "",
    sort: Sort = "date",
    order: Order = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """A page of cards after the first, for the grid's endless scroll; `X-Next` names the
    page after it (empty after the last)."""
    search = gallery.Search(query=q.strip(), sort=sort, order=order)
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return no_session()
        try:
            conditions = search.conditions(session)
        except EngineError as refused:
            return error_page(request, refused, visitor)
        total = gallery.count(session=session, conditions=conditions)
        cards = gallery.cards(session=session, search=search, conditions=conditions, page=page)
    response = pages_of(request).render(
        "cards.html", cards=cards, search_query=_search_query(search)
    )
    response.headers["X-Next"] = _more(search, page, total) or ""
    return response


# -- an item -------------------------------------------------------------------------------


@router.get("/items/{file_id}", response_class=HTMLResponse)
def item_page(
    request: Request,
    file_id: FileId,
    q: Annotated[str, Query(max_length=10_000)] = "",
    sort: Sort = "date",
    order: Order = "desc",
    at: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    space: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    """An item; `space` names the embedding space of its similar items (default: the first
    holding a vector of it)."""
    search = gallery.Search(query=q.strip(), sort=sort, order=order)
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return to_signin(request)
        try:
            item = gallery.item(session=session, file_id=file_id)
            spaces = similar.spaces_of(session=session, file_id=file_id)
            neighbours = (
                gallery.neighbours(
                    session=session,
                    search=search,
                    conditions=search.conditions(session),
                    position=at,
                )
                if at is not None
                else gallery.Neighbours(previous=None, next=None)
            )
        except EngineError as refused:
            return error_page(request, refused, visitor)
        chosen = space if space in spaces else (spaces[0] if spaces else None)
        nearest: list[similar.Neighbour] = []
        similar_error: EngineError | None = None
        if chosen is not None:
            try:
                nearest = similar.nearest(
                    session=session, unique_name=item.unique_name, space=chosen, query=search.query
                )
            except EngineError as refused:
                similar_error = refused
    labels = sorted({shape.label for shape in item.shapes})
    return pages_of(request).render(
        "item.html",
        visitor=visitor,
        item=item,
        labels=labels,
        search=search,
        search_query=_search_query(search),
        at=at,
        previous=neighbours.previous,
        next=neighbours.next,
        spaces=spaces,
        space=chosen,
        similar=[n for n in nearest if n.id != item.id],
        similar_error=similar_error,
    )


@router.post("/items/{file_id}/tags")
def add_tag(
    request: Request,
    file_id: FileId,
    name: Annotated[str, Form(max_length=255)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    back: Annotated[str, Form(max_length=12_000)] = "",
) -> Response:
    """Tag the item by hand (a human tag): a write key's action."""

    def tag(session: Session, visitor: Visitor) -> None:
        if not name.strip():
            raise InvalidInput("Type the tag's name before adding it.")
        item = gallery.item(session=session, file_id=file_id)
        lake_tags.add_tags(session=session, unique_name=item.unique_name, names=[name.strip()])

    back_to = signin.local(back or f"{PREFIX}/items/{file_id}")
    return page_write(request, csrf_token, "tagging an item changes the lake", tag, back_to)


# -- bytes ---------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


@router.get("/files/{file_id}")
def file_bytes(request: Request, file_id: FileId) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        if visitor_of(request, session) is None:
            return no_session()
        try:
            found = lake_items.file_content(session=session, file_id=file_id)
        except EngineError as refused:
            return Response(refused.message, status_code=refused.status_code)
    return StreamingResponse(
        open_content(found, storage=_storage(request)),
        media_type=found.media_type,
        headers={
            "Content-Length": str(found.size_bytes),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/thumbs/{file_id}")
def thumbnail(request: Request, file_id: FileId) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        if visitor_of(request, session) is None:
            return no_session()
        try:
            found = lake_items.file_content(session=session, file_id=file_id)
        except EngineError as refused:
            return Response(refused.message, status_code=refused.status_code)
    try:
        jpeg = thumbnails.thumbnail(
            home=_settings(request).home, found=found, storage=_storage(request)
        )
    except EngineError as refused:
        return Response(refused.message, status_code=refused.status_code)
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/static/{name}")
def static(name: str) -> Response:
    media_type = STATIC.get(name)
    if media_type is None:
        return Response("No such file.", status_code=404)
    text = resources.files("engine.ui").joinpath("static", name).read_bytes()
    return Response(
        text,
        media_type=media_type,
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )
