"""Writing and reading vectors: validated upserts, lookups by name.

One vector per (space, file): a rewrite replaces it (`INSERT ... ON CONFLICT DO UPDATE`), so a
redelivered job chunk or a repeated import leaves no duplicates. Writes never build the space's
HNSW index: a worker builds it in bulk once the writes go quiet (engine/embeddings/indexing.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.embeddings import Embedding, EmbeddingSpace
from engine.db.models import File
from engine.db.vectors import PackedVector, VectorParam
from engine.embeddings import spaces
from engine.errors import FileNotFoundInLake, InvalidEmbeddings
from engine.hosting.reference import ModelVersionRef
from sdk.schemas import EmbeddingVector, EmbeddingVectors

HALFVEC_MAX = 65504.0  # the largest finite float16: vectors are indexed as halfvec
MAX_PROBLEMS = 10
_PLAIN_NUMBERS = frozenset({float, int})
_ALL_ZEROS = "is all zeros (it has no direction, so no cosine similarity)"


def vector_problem(values: Sequence[float], dim: int) -> str | None:
    """Why `values` cannot be stored in a `dim`-d space, or None."""
    if len(values) != dim:
        return f"has {len(values)} numbers, not {dim}"
    # The common case, plain numbers, checked at C speed; anything else, or a vector that
    # fails, is walked below to name the first problem.
    if set(map(type, values)) <= _PLAIN_NUMBERS:
        try:
            array = np.asarray(values, dtype=np.float64)
        except OverflowError:  # an int beyond float range
            array = None
        if (
            array is not None
            and np.isfinite(array).all()
            and float(np.abs(array).max(initial=0.0)) <= HALFVEC_MAX
        ):
            return None if array.any() else _ALL_ZEROS
    nonzero = False
    for value in values:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            return f"holds {value!r}, not a finite number"
        if abs(value) > HALFVEC_MAX:
            return f"holds {value!r}, beyond ±{HALFVEC_MAX:g} (vectors are indexed as halfvec)"
        nonzero = nonzero or value != 0
    if not nonzero:
        return _ALL_ZEROS
    return None


def check_vectors(vectors: Iterable[tuple[str, Sequence[float]]], dim: int) -> None:
    """Raise `InvalidEmbeddings` listing the first problems of (label, vector) pairs."""
    problems = [
        f"{label} {problem}"
        for label, values in vectors
        if (problem := vector_problem(values, dim)) is not None
    ]
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS])
        more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
        raise InvalidEmbeddings(
            f"{len(problems)} vector(s) are invalid for {dim}-d "
            f"embeddings: {shown}{more}. Nothing was written.",
            problems=problems[:100],
            dimension=dim,
        )


def upsert(
    session: Session,
    space: EmbeddingSpace,
    vectors: Mapping[int, Sequence[float]],
    *,
    job_id: int | None,
) -> int:
    """Store `vectors` (file id -> checked vector of the space's dimension); return how many."""
    if not vectors:
        return 0
    # One Core statement executed for all rows (batched into multi-row VALUES); each vector
    # goes in binary (`PackedVector`).
    statement = insert(Embedding).values(
        space_id=bindparam("space_id"),
        file_id=bindparam("file_id"),
        vector=bindparam("packed_vector", type_=VectorParam()),
        job_id=bindparam("job_id"),
    )
    session.connection().execute(
        statement.on_conflict_do_update(
            index_elements=[Embedding.space_id, Embedding.file_id],
            set_={
                "vector": statement.excluded.vector,
                "job_id": statement.excluded.job_id,
                "created_at": func.now(),
            },
        ),
        [
            {
                "space_id": space.id,
                "file_id": file_id,
                "packed_vector": PackedVector(vector),
                "job_id": job_id,
            }
            for file_id, vector in vectors.items()
        ],
    )
    return len(vectors)


def write_embeddings(
    *,
    session: Session,
    version: ModelVersionRef,
    vectors: dict[int, list[float]],
    job_id: int | None,
) -> None:
    """Store a job chunk's vectors (file id -> the model's output) in the version's space.

    The space `<name>@<version>` is created by the version's first vectors with their dimension,
    which is recorded on the version when the bundle did not declare one. Files deleted since
    the job was planned are skipped. Raises `InvalidEmbeddings` / `EmbeddingDimensionMismatch`
    when the model's output does not fit the space.
    """
    if not vectors:
        return
    dim = len(next(iter(vectors.values())))
    check_vectors(((f"file {file_id}", v) for file_id, v in vectors.items()), dim)
    space = spaces.space_for_version(
        session,
        model_version_id=version.id,
        model_name=version.name,
        version=version.version,
        declared_dim=version.embedding_dim,
        dim=dim,
    )
    present = set(session.scalars(select(File.id).where(File.id.in_(list(vectors)))))
    upsert(session, space, {f: v for f, v in vectors.items() if f in present}, job_id=job_id)


def file_ids(session: Session, unique_names: Iterable[str]) -> dict[str, int]:
    """Unique name -> file id; `FileNotFoundInLake` (404) listing the names not in the lake."""
    names = list(dict.fromkeys(unique_names))
    found = {
        name: file_id
        for name, file_id in session.execute(
            select(File.unique_name, File.id).where(File.unique_name.in_(names))
        )
    }
    missing = [n for n in names if n not in found]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:MAX_PROBLEMS])
        more = f" (and {len(missing) - MAX_PROBLEMS} more)" if len(missing) > MAX_PROBLEMS else ""
        raise FileNotFoundInLake(
            f"{len(missing)} unique name(s) are not in the lake: "
            f"{shown}{more}. Nothing was written.",
            missing=missing[:100],
        )
    return found


def get_vectors(
    *, session: Session, unique_names: Sequence[str], model_name: str
) -> EmbeddingVectors:
    """The stored vectors of the files, in the order asked (`embeddings` null where none)."""
    space = spaces.space_for_read(session, model_name)
    ids = file_ids(session, unique_names)
    rows = session.execute(
        select(Embedding.file_id, Embedding.vector).where(
            Embedding.space_id == space.id, Embedding.file_id.in_(list(ids.values()))
        )
    )
    by_id = {file_id: [float(x) for x in vector] for file_id, vector in rows}
    return EmbeddingVectors(
        space=space.name,
        dimension=space.dim,
        items=[
            EmbeddingVector(unique_name=name, embeddings=by_id.get(ids[name]))
            for name in unique_names
        ],
    )
