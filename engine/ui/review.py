"""Reviewing a preview job's proposals one image at a time: which files still have proposed
annotations of the job, and the one at a position among them (two statements); accepting
those scoring at least a threshold at once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import distinct, func, select, update
from sqlalchemy.orm import Session

from engine.db.models import Annotation


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
