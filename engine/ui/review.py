"""Reviewing a preview job's proposals one image at a time: which files still have proposed
annotations of the job, and the one at a position among them (two statements); deciding on
one image's, remembered on the browser's session so that the last decision can be undone;
accepting those scoring at least a threshold at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, insert, select, update
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from engine.db.ui_sessions import UiSession
from engine.errors import Conflict
from engine.jobs import service

# what a rejected proposal is re-created from when its rejection is undone
_KEPT = (
    "file_id",
    "frame_index",
    "label",
    "shape",
    "geometry",
    "confidence",
    "source",
    "operation_id",
    "model_version_id",
    "job_id",
    "metadata_",
)


@dataclass(frozen=True)
class Pending:
    """The file at `position` (None past the end) among the `total` files still to review."""

    file_id: int | None
    position: int
    total: int


def pending(*, session: Session, job_id: int, position: int) -> Pending:
    proposed = (Annotation.job_id == job_id, Annotation.status == "proposed")
    total = session.scalar(select(func.count(distinct(Annotation.file_id))).where(*proposed)) or 0
    position = min(position, max(total - 1, 0))
    file_id = session.scalar(
        select(Annotation.file_id)
        .where(*proposed)
        .group_by(Annotation.file_id)
        .order_by(Annotation.file_id)
        .offset(position)
        .limit(1)
    )
    return Pending(file_id=file_id, position=position, total=total)


def accept_above(*, session: Session, job_id: int, threshold: float) -> int:
    """Apply the job's proposals scoring at least `threshold` (those without a score are left
    to decide one by one); returns how many. The job service's `decide_proposals` decides by
    file, not by score."""
    result = session.execute(
        update(Annotation)
        .where(
            Annotation.job_id == job_id,
            Annotation.status == "proposed",
            Annotation.confidence >= threshold,
        )
        .values(status="applied")
        .returning(Annotation.id)
    )
    return len(result.all())


def decide(
    *,
    session: Session,
    ui_session_id: int,
    job_id: int,
    file_id: int,
    unique_name: str,
    accept: bool,
) -> None:
    """Accept or reject the job's proposals on one file, as the job service does, and keep
    on the browser's session what undoing it needs: the ids accepted, or the rows rejected."""
    proposed = session.scalars(
        select(Annotation).where(
            Annotation.job_id == job_id,
            Annotation.file_id == file_id,
            Annotation.status == "proposed",
        )
    ).all()
    kept: list[dict[str, Any]] = [
        {"id": row.id} if accept else {k: getattr(row, k) for k in _KEPT} for row in proposed
    ]
    service.decide_proposals(
        session=session, job_id=job_id, accept=accept, unique_names=[unique_name]
    )
    decision = {"job_id": job_id, "accept": accept, "annotations": kept}
    session.execute(
        update(UiSession).where(UiSession.id == ui_session_id).values(last_decision=decision)
    )


def undoable(*, session: Session, ui_session_id: int, job_id: int) -> bool:
    """Whether the session's last decision was on this job's proposals and can be undone."""
    decision = session.scalar(select(UiSession.last_decision).where(UiSession.id == ui_session_id))
    return bool(decision and decision.get("job_id") == job_id)


def undo(*, session: Session, ui_session_id: int, job_id: int) -> None:
    """Make the proposals of the session's last decision on this job proposals again."""
    decision = session.scalar(
        select(UiSession.last_decision).where(UiSession.id == ui_session_id).with_for_update()
    )
    if not decision or decision.get("job_id") != job_id:
        raise Conflict(
            f"There is no decision on job {job_id}'s proposals to undo: only the last one "
            "made in this browser session can be."
        )
    kept = decision["annotations"]
    if decision["accept"]:
        session.execute(
            update(Annotation)
            .where(Annotation.id.in_([a["id"] for a in kept]), Annotation.status == "applied")
            .values(status="proposed")
        )
    elif kept:
        session.execute(insert(Annotation), [{**a, "status": "proposed"} for a in kept])
    session.execute(
        update(UiSession).where(UiSession.id == ui_session_id).values(last_decision=None)
    )
