"""Importing vectors computed elsewhere: `insert_image_embeddings_batch` and friends.

Each batch (fewer than 100 entries) is checked whole before anything is written: every unique
name must be in the lake and every vector must have the declared dimension and finite values.
Batches sent with the same non-empty `session_id` add to one job record (kind
`embedding_import`, platform `none`) whose `total` / `done` grow with each batch, so a large
import shows as one job with progress; a batch with no session id is a job of its own.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.embeddings import EmbeddingSpace
from engine.db.jobs import Job
from engine.embeddings import spaces, store
from engine.errors import Conflict, EmbeddingBatchTooLarge, InvalidEmbeddings
from sdk.schemas import (
    MAX_EMBEDDING_BATCH,
    EmbeddingBatch,
    EmbeddingBatchResult,
    EmbeddingImportParams,
)
from sdk.vocabulary import JobKind, JobStatus, Platform

KIND = JobKind.EMBEDDING_IMPORT


def _dimension(vector_dimension: list[int]) -> int:
    if len(vector_dimension) != 1:
        raise InvalidEmbeddings(
            f"vector_dimension must hold one number, the vectors' length "
            f"(e.g. [2048]), not {vector_dimension!r}.",
            vector_dimension=vector_dimension,
        )
    return spaces.check_dimension(vector_dimension[0])


def _job(session: Session, session_id: str, space: EmbeddingSpace, count: int) -> tuple[int, int]:
    """(job id, entries received so far) of the batch's job, grown by `count`."""
    now = func.now()
    params = EmbeddingImportParams(model_name=space.name, space=space.name)
    statement = insert(Job).values(
        kind=KIND,
        platform=Platform.NONE,
        status=JobStatus.SUCCEEDED,
        params=params.model_dump(mode="json"),
        model_version_id=space.model_version_id,
        session_id=session_id or None,
        total=count,
        done=count,
        started_at=now,
        finished_at=now,
    )
    if session_id:
        statement = statement.on_conflict_do_update(
            index_elements=[Job.session_id],
            index_where=Job.session_id.is_not(None),
            set_={
                "total": Job.total + statement.excluded.total,
                "done": Job.done + statement.excluded.done,
                "finished_at": now,
            },
        )
    job_id, kind, stored, total = session.execute(
        statement.returning(Job.id, Job.kind, Job.params, Job.total)
    ).one()
    if kind != KIND or stored.get("space") != space.name:
        raise Conflict(
            f"session_id {session_id!r} already belongs to job {job_id} "
            f"({kind}, {stored.get('space')!r}); use a new session id for this "
            f"import into {space.name!r}.",
            session_id=session_id,
            job_id=job_id,
        )
    return job_id, total


def import_batch(*, session: Session, batch: EmbeddingBatch) -> EmbeddingBatchResult:
    """Store one batch (all or nothing) and count it on its session's job."""
    count = len(batch.embedding_list)
    if count > MAX_EMBEDDING_BATCH:
        raise EmbeddingBatchTooLarge(
            f"This batch holds {count} embeddings; a batch holds at most "
            f"{MAX_EMBEDDING_BATCH}. Split the list, or call "
            "insert_image_embeddings, which sends any number in batches.",
            count=count,
            limit=MAX_EMBEDDING_BATCH,
        )
    if count == 0:
        raise InvalidEmbeddings(
            'embedding_list is empty: send at least one {"uniqueName": ..., "embeddings": [...]}.'
        )
    dim = _dimension(batch.vector_dimension)
    # A name repeated in one batch: the last vector wins, as a later batch would.
    vectors = {entry.unique_name: entry.embeddings for entry in batch.embedding_list}
    store.check_vectors(((repr(name), v) for name, v in vectors.items()), dim)
    ids = store.file_ids(session, vectors)
    space = spaces.space_for_write(session, batch.model_name, dim)
    session_id = batch.session_id.strip()
    job_id, total = _job(session, session_id, space, count)
    written = store.upsert(
        session, space, {ids[name]: v for name, v in vectors.items()}, job_id=job_id
    )
    return EmbeddingBatchResult(
        job_id=job_id,
        session_id=session_id or None,
        space=space.name,
        dimension=dim,
        written=written,
        total=total,
    )
