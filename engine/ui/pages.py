"""Rendering the gallery's pages: the Jinja2 templates (every value escaped), the security
headers every page carries, and the small formatting filters the templates use."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from engine.db.session import session_scope
from engine.errors import EngineError, Forbidden
from engine.interop.draw import label_color
from engine.ui import sessions

PREFIX = "/ui"
COOKIE = "metalake_ui"  # the session token

# Our own script and styles only (no inline script or style attribute), no framing, no
# referrer (a sign-in link's token must not leave in a Referer header).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _size(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _color(label: str) -> str:
    r, g, b = label_color(label)
    return f"#{r:02x}{g:02x}{b:02x}"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _make_environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("engine.ui", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(size=_size, when=_when, color=_color, pretty=_pretty)
    environment.globals["urlencode"] = urlencode
    return environment


class Pages:
    """The templates, loaded once per app."""

    def __init__(self) -> None:
        self.environment = _make_environment()

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        text = self.environment.get_template(name).render(**context)
        return HTMLResponse(text, status_code=status_code, headers=SECURITY_HEADERS)


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.ui_pages
    return pages


def visitor_of(request: Request, session: Session) -> sessions.Visitor | None:
    """The signed-in browser making `request`, or None."""
    return sessions.visitor(session=session, token=request.cookies.get(COOKIE))


def to_signin(request: Request) -> RedirectResponse:
    """A page asked for without a session: to the sign-in form, and back afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/signin?{urlencode({'next': target})}", status_code=303)


def no_session() -> Response:
    """What a request other than a page gets without a session."""
    return Response("Sign in at /ui/signin.", status_code=401, headers=SECURITY_HEADERS)


def error_page(
    request: Request, error: EngineError, visitor: sessions.Visitor | None
) -> HTMLResponse:
    return pages_of(request).render(
        "error.html", status_code=error.status_code, error=error, visitor=visitor
    )


def csrf_refused() -> Forbidden:
    return Forbidden(
        "This form's security token does not match your session (the page is older than "
        "your sign-in, or the form came from another site); reload the page and try again."
    )


def page_write(
    request: Request,
    csrf_token: str,
    why: str,
    action: Callable[[Session, sessions.Visitor], None],
    then: str,
) -> Response:
    """A form's write: the session, its CSRF token and a write key are checked (`why` says
    what the write changes), `action` runs in one transaction, and the browser goes on to
    `then`; anything refused shows the error page and writes nothing."""
    with session_scope(request.app.state.session_factory) as session:
        visitor = visitor_of(request, session)
        if visitor is None:
            return no_session()
        try:
            if not visitor.csrf_matches(csrf_token):
                raise csrf_refused()
            visitor.principal.require("write", why)
            action(session, visitor)
        except EngineError as refused:
            session.rollback()
            return error_page(request, refused, visitor)
    return RedirectResponse(then, status_code=303)
