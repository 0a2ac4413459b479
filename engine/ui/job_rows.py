"""The jobs page's rows: the latest jobs with their model, in one statement (the job service's
`list_jobs` looks each job's model up on its own), and their progress for the page's polling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.jobs import Job
from engine.db.models import Model, ModelVersion
from sdk.schemas import FINISHED_JOB_STATUSES

LIMIT = 100


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    status: str
    model: str | None
    total: int
    done: int
    failed: int
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES


def latest(*, session: Session) -> list[JobRow]:
    """The `LIMIT` latest jobs, newest first."""
    rows = session.execute(
        select(
            Job.id,
            Job.kind,
            Job.status,
            Model.name,
            ModelVersion.version,
            Job.total,
            Job.done,
            Job.failed,
            Job.created_at,
            Job.finished_at,
        )
        .outerjoin(ModelVersion, ModelVersion.id == Job.model_version_id)
        .outerjoin(Model, Model.id == ModelVersion.model_id)
        .order_by(Job.id.desc())
        .limit(LIMIT)
    )
    return [
        JobRow(
            id=row[0],
            kind=row[1],
            status=row[2],
            model=f"{row[3]}@{row[4]}" if row[3] else None,
            total=row[5],
            done=row[6],
            failed=row[7],
            created_at=row[8],
            finished_at=row[9],
        )
        for row in rows
    ]


def progress(*, session: Session, job_ids: Sequence[int]) -> list[dict[str, object]]:
    """Status and counts of the jobs `job_ids` (unknown ids left out)."""
    rows = session.execute(
        select(Job.id, Job.status, Job.total, Job.done, Job.failed).where(Job.id.in_(list(job_ids)))
    )
    return [
        {
            "id": row[0],
            "status": row[1],
            "total": row[2],
            "done": row[3],
            "failed": row[4],
            "finished": row[1] in FINISHED_JOB_STATUSES,
        }
        for row in rows
    ]
