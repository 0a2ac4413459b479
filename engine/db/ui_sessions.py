"""The gallery's sign-ins (`engine/ui/`): one-time sign-in links and browser sessions.

Only the SHA-256 of a link's or a session's token is stored; the token itself lives in the
link or in the browser's cookie. A row acts with the scopes of the API key it was made from,
and goes when that key is deleted (a revoked key's rows are refused by the lookup).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, created_at_column

UI_SESSION_KINDS = ("link", "session")


class UiSession(Base):
    __tablename__ = "ui_sessions"
    __table_args__ = (
        CheckConstraint("kind IN ('link', 'session')", name="kind"),
        Index("ix_ui_sessions_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    # the token a page's forms send back (double submit); none for a link
    csrf_token: Mapped[str | None] = mapped_column(String(64))
    # the session's last decision on proposals, so that it can be undone (engine/ui/review.py)
    last_decision: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column()
