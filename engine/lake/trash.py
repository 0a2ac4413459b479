"""The trash: files taken out of the lake by a selection, with everything that hangs on them.

A file's rows (collection memberships, annotations, tags, vectors, finished jobs' items) go
with it in one transaction (the foreign keys cascade), so the files leave every query at
once. Files an unfinished job is working on, or that a dataset version holds, are refused:
the job would never finish and the frozen version would change. Bytes the engine copied into
managed storage are removed after the deletion commits, unless another file shares them
(storage is content-addressed); bytes registered in place are the user's and stay.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from engine.db.datasets import DatasetVersionItem
from engine.db.jobs import Job, JobItem
from engine.db.models import File
from engine.errors import EngineError, FilesInUse
from engine.lake.items import item_conditions
from engine.storage import Storage
from sdk.schemas import ItemQuery
from sdk.schemas_trash import TrashReport, TrashRequest
from sdk.vocabulary import FINISHED_JOB_STATUSES

log = logging.getLogger("engine.lake.trash")
LISTED = 1000  # unique names a report lists


def _managed(storage: Storage, uri: str) -> bool:
    root = storage.managed_url
    return bool(root) and urlparse(uri).scheme in ("file", "s3") and uri.startswith(f"{root}/")


def trash_files(
    *, session: Session, storage: Storage, request: TrashRequest
) -> tuple[TrashReport, list[str]]:
    """Delete the selected files; the report, and the managed storage URIs no remaining file
    uses (to remove once this transaction commits: `remove_stored_bytes`)."""
    search = ItemQuery(
        query=request.query,
        filter=request.filter,
        content_type=request.content_type,
        collection_id=request.collection_id,
    )
    rows = session.execute(
        select(File.id, File.unique_name, File.storage_uri)
        .where(*item_conditions(session=session, search=search))
        .order_by(File.id)
        .with_for_update()
    ).all()
    ids = [r.id for r in rows]
    if not ids:
        return TrashReport(trashed=0, unique_names=[], stored_bytes_removed=0), []
    busy = session.scalars(
        select(Job.id)
        .join(JobItem, JobItem.job_id == Job.id)
        .where(JobItem.file_id.in_(ids), Job.status.not_in(FINISHED_JOB_STATUSES))
        .distinct()
        .order_by(Job.id)
    ).all()
    if busy:
        raise FilesInUse(
            f"Job(s) {list(busy)} have not finished and work on some of these files; wait for "
            "them or cancel them, then trash the files.",
            jobs=list(busy),
        )
    versions = session.scalars(
        select(DatasetVersionItem.version_id)
        .where(DatasetVersionItem.file_id.in_(ids))
        .distinct()
        .order_by(DatasetVersionItem.version_id)
    ).all()
    if versions:
        raise FilesInUse(
            f"Dataset version(s) {list(versions)} hold some of these files and are frozen; "
            "delete those versions first, or narrow the selection.",
            dataset_versions=list(versions),
        )
    session.execute(delete(File).where(File.id.in_(ids)))
    candidates = sorted({r.storage_uri for r in rows if _managed(storage, r.storage_uri)})
    shared = set(
        session.scalars(select(File.storage_uri).where(File.storage_uri.in_(candidates))).all()
        if candidates
        else []
    )
    unused = [uri for uri in candidates if uri not in shared]
    report = TrashReport(
        trashed=len(ids),
        unique_names=[r.unique_name for r in rows[:LISTED]],
        stored_bytes_removed=len(unused),
    )
    return report, unused


def remove_stored_bytes(db_engine: Engine, storage: Storage, uris: list[str]) -> None:
    """Remove trashed files' managed bytes, each unless a file registered since uses it."""
    with Session(db_engine) as session:
        for uri in uris:
            used = session.scalar(select(func.count()).where(File.storage_uri == uri))
            if used:
                continue
            try:
                storage.delete(uri)
            except EngineError as exc:  # the rows are gone; the bytes are only left over
                log.warning("Could not remove %s after trashing its file: %s", uri, exc)
