"""Signing in to the gallery: the API key form, the one-time links of `metalake ui`, signing
out. The session itself: sessions.py."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine import auth
from engine.db.session import make_engine, make_session_factory, session_scope
from engine.errors import EngineError, Forbidden, InvalidInput, Unauthorized
from engine.ui import sessions
from engine.ui.pages import COOKIE, PREFIX, csrf_refused, error_page, pages_of, visitor_of

SIGNIN_COOKIE = "metalake_ui_signin"  # the sign-in form's CSRF token, before any session

router = APIRouter()


def _set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(sessions.SESSION_LIFETIME.total_seconds()),
        path=PREFIX + "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def local(target: str | None) -> str:
    """Where to go after signing in: a path of the gallery, never another site."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX + "/"


def one_time_link(
    *, database_url: str, base_url: str, key: str, next_path: str | None = None
) -> str:
    """A link signing a browser in once, as `key`, at the engine `base_url` (then on to the
    gallery path `next_path`); written straight to the database at `database_url`."""
    db_engine = make_engine(database_url, pool_size=1)
    try:
        with session_scope(make_session_factory(db_engine)) as session:
            principal = auth.authenticate(session=session, key=key)
            token, _ = sessions.create_link(session=session, key_id=principal.key_id)
    finally:
        db_engine.dispose()
    link = f"{base_url}{PREFIX}/signin/{token}"
    return f"{link}?{urlencode({'next': next_path})}" if next_path else link


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str | None = None) -> HTMLResponse:
    token = sessions.new_form_token()
    response = pages_of(request).render(
        "signin.html", csrf_token=token, next=local(next), error=None, visitor=None
    )
    response.set_cookie(
        SIGNIN_COOKIE, token, path=PREFIX + "/signin", httponly=True, samesite="strict"
    )
    return response


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = PREFIX + "/",
) -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE)
    if not expected or not sessions.same_token(expected, csrf_token):
        error: EngineError = Forbidden(
            "The sign-in form expired or came from another site; load the sign-in page again "
            "and submit it from there."
        )
    elif not api_key.strip():
        error = InvalidInput(
            "Type an API key (it starts with mlk_); `metalake keys create` makes one."
        )
    else:
        try:
            with session_scope(request.app.state.session_factory) as session:
                token = sessions.sign_in(session=session, key=api_key)
        except Unauthorized as refused:
            error = refused
        else:
            response = RedirectResponse(local(next), status_code=303)
            _set_session_cookie(response, request, token)
            response.delete_cookie(SIGNIN_COOKIE, path=PREFIX + "/signin")
            return response
    form_token = sessions.new_form_token()
    page = pages_of(request).render(
        "signin.html",
        status_code=error.status_code,
        csrf_token=form_token,
        next=local(next),
        error=error,
        visitor=None,
    )
    page.set_cookie(
        SIGNIN_COOKIE, form_token, path=PREFIX + "/signin", httponly=True, samesite="strict"
    )
    return page


@router.get("/signin/{token}", response_class=HTMLResponse)
def signin_link(
    request: Request,
    token: str,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """A one-time link from `metalake ui`: used up here, it becomes a session; then on to
    `next`, a page of the gallery (the grid of a query, say)."""
    try:
        with session_scope(request.app.state.session_factory) as session:
            session_token = sessions.redeem_link(session=session, token=token)
    except Unauthorized as refused:
        return error_page(request, refused, None)
    response = RedirectResponse(local(next), status_code=303)
    _set_session_cookie(response, request, session_token)
    return response


@router.post("/signout")
def signout(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is not None:
            if not visitor.csrf_matches(csrf_token):
                return error_page(request, csrf_refused(), visitor)
            sessions.sign_out(session=session, session_id=visitor.session_id)
    response = RedirectResponse(PREFIX + "/signin", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX + "/")
    return response
