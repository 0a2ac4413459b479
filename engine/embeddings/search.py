"""Similarity search: the k nearest files by cosine similarity, optionally among filtered files.

Unfiltered searches use the space's HNSW index; filtered ones score the matching vectors
exactly up to `exact_limit`, and walk the index iteratively beyond it; a space without an index
is scanned exactly. k results whenever k files match. docs/similarity.md explains the choice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

from pgvector.sqlalchemy import HALFVEC, VECTOR
from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.orm import Session

from engine.db.embeddings import Embedding, EmbeddingSpace
from engine.db.models import Collection, File, collection_files
from engine.db.session import HNSW_EF_SEARCH as EF_SEARCH
from engine.db.vectors import PackedVector, VectorParam
from engine.embeddings import spaces, store
from engine.errors import CollectionNotFound, EmbeddingNotFound, InvalidInput
from engine.query import file_conditions
from sdk.schemas import SimilarItem, SimilarItems, SimilarityQuery

EXACT_THRESHOLD = 5_000  # a space without an index: up to this many matches, driven from the files
# An exact scan costs a fixed time per matching vector, the iterative index scan a time divided
# by the share of the space that matches. They cost the same at m matching of n vectors when
# m * m = EXACT_COST_RATIO * n (the ratio fitted on the bench, bench/README.md).
EXACT_COST_RATIO = 13
SMALL_INDEX = 10_000  # below, the unfiltered search rules sorting out (`similar_items`)
MAX_EF_SEARCH = 1_000
MAX_SCAN_TUPLES = 100_000

Method = Literal["index", "iterative_index", "exact"]


def _space_condition(space_id: int) -> ColumnElement[bool]:
    # A literal, not a bind parameter: the partial index's predicate must be provable from the
    # query even under a generic (prepared) plan.
    return Embedding.space_id == literal_column(str(int(space_id)))


QUERY_VECTOR = "query_vector"  # the bind parameter holding the query vector (`bind_vector`)


def _query_vector(dim: int) -> ColumnElement[Any]:
    """The query vector as vector(dim). Its value is bound at execution (`bind_vector`),
    so that statements can be built once and reused."""
    return cast(bindparam(QUERY_VECTOR, type_=VectorParam()), VECTOR(dim))


def bind_vector(vector: Sequence[float]) -> dict[str, Any]:
    """Execution parameters binding the query vector: once, in binary (`PackedVector`)."""
    return {QUERY_VECTOR: PackedVector(vector)}


def _score(query: ColumnElement[Any], vector: Any = Embedding.vector) -> ColumnElement[Any]:
    distance: ColumnElement[Any] = vector.cosine_distance(query)
    return 1 - distance


def index_query(
    space: EmbeddingSpace, limit: int, conditions: Sequence[ColumnElement[bool]] = ()
) -> Select[Any]:
    """Nearest `limit` files by the space's HNSW index: (unique_name, file_id, score); the
    query vector is bound at execution (`bind_vector`)."""
    if not conditions:
        return plain_index_query(int(space.id), int(space.dim), limit)
    return _build_index_query(space.id, space.dim, limit, conditions)


def _build_index_query(
    space_id: int, dim: int, limit: int, conditions: Sequence[ColumnElement[bool]] = ()
) -> Select[Any]:
    query = _query_vector(dim)
    distance = cast(Embedding.vector, HALFVEC(dim)).cosine_distance(cast(query, HALFVEC(dim)))
    return (
        select(File.unique_name, Embedding.file_id, _score(query).label("score"))
        .select_from(Embedding)
        .join(File, File.id == Embedding.file_id)
        .where(_space_condition(space_id), *conditions)
        .order_by(distance)
        .limit(limit)
    )


@functools.lru_cache(maxsize=1024)
def plain_index_query(space_id: int, dim: int, limit: int) -> Select[Any]:
    """The unfiltered search (the common one), built once per space and k rather than for
    each search. engine/api/fast_search.py runs it too."""
    return _build_index_query(space_id, dim, limit)


def _vector_of_file(space: EmbeddingSpace, *columns: Any) -> Any:
    """A LATERAL lookup of the space's row for the outer `files` row, by index. When the
    matching files are known to be few, driving from them this way keeps the plan a nested
    loop of index probes; a join lets the planner hash the files and scan every vector row of
    the table instead."""
    return (
        select(*columns)
        .where(_space_condition(space.id), Embedding.file_id == File.id)
        .limit(1)
        .lateral("space_vector")
    )


def exact_query(
    space: EmbeddingSpace,
    limit: int,
    conditions: Sequence[ColumnElement[bool]] = (),
    *,
    few_files: bool = False,
) -> Select[Any]:
    """Nearest `limit` files by an exact scan of the matching vectors (no index).

    `few_files`: the matching files are known to be few (counted), so each one's vector is
    looked up by index (`_vector_of_file`); otherwise the planner joins as it sees fit."""
    query = _query_vector(space.dim)
    if few_files:
        row = _vector_of_file(space, Embedding.file_id, Embedding.vector)
        candidates = (
            select(File.unique_name, row.c.file_id, _score(query, row.c.vector).label("score"))
            .select_from(File)
            .join(row, true())
            .where(*conditions)
        )
    else:
        candidates = (
            select(File.unique_name, Embedding.file_id, _score(query).label("score"))
            .select_from(Embedding)
            .join(File, File.id == Embedding.file_id)
            .where(_space_condition(space.id), *conditions)
        )
    materialized = candidates.cte("candidates").prefix_with("MATERIALIZED")
    return select(materialized).order_by(materialized.c.score.desc()).limit(limit)


def exact_limit(vectors: int) -> int:
    """Up to how many matching vectors an exact scan is cheaper than the iterative index scan,
    in an indexed space of `vectors` (1,140 at 100,000, 360 at 10,000)."""
    return math.isqrt(EXACT_COST_RATIO * vectors)


def _count(
    session: Session, space: EmbeddingSpace, conditions: Sequence[ColumnElement[bool]], cap: int
) -> int:
    """How many vectors match, counting no further than `cap` + 1. Driven from the matching
    files, each probed for its vector (`_vector_of_file`): when most files have one, that is
    about `cap` probes, where a join would read the space's vectors first."""
    row = _vector_of_file(space, Embedding.file_id)
    matching = (
        select(row.c.file_id)
        .select_from(File)
        .join(row, true())
        .where(*conditions)
        .limit(cap + 1)
        .subquery()
    )
    # Without an index scan of `files` where one serves the conditions, the LIMIT makes a
    # sequential scan look cheap: stopping at the first cap + 1 matches, as if they were
    # spread evenly. Files uploaded together sit together, so a filter for the last upload's
    # files read the whole table where the GIN index would answer at once. The planner chose
    # it or not depending on which plans a connection had cached, so filtered searches were
    # slow in some bench runs and not in others.
    session.execute(set_local_statement({"enable_seqscan": "off"}))
    count = int(session.scalar(select(func.count()).select_from(matching)) or 0)
    session.execute(set_local_statement({"enable_seqscan": "on"}))
    return count


def search_conditions(session: Session, request: SimilarityQuery) -> list[ColumnElement[bool]]:
    """Conditions on `files` for the request's collection, query and filter."""
    conditions = file_conditions(request.query, request.filter)
    if request.collection_id is not None:
        if session.get(Collection, request.collection_id) is None:
            raise CollectionNotFound(
                f"No collection has id {request.collection_id}.",
                collection_id=request.collection_id,
            )
        conditions.append(
            File.id.in_(
                select(collection_files.c.file_id).where(
                    collection_files.c.collection_id == request.collection_id
                )
            )
        )
    return conditions


def _target(
    session: Session, space: EmbeddingSpace, request: SimilarityQuery
) -> tuple[Sequence[float], int | None]:
    """The query vector (as given, or the stored array: `bind_vector` packs either), and the
    file to leave out of the results (when searching by file)."""
    if (request.unique_name is None) == (request.vector is None):
        raise InvalidInput(
            "Pass either unique_name (a file whose neighbours to find) or "
            "vector (a query vector), not both and not neither."
        )
    if request.vector is not None:
        problem = store.vector_problem(request.vector, space.dim)
        if problem:
            raise InvalidInput(
                f"The query vector {problem} (space {space.name!r} is {space.dim}-d).",
                space=space.name,
                dimension=space.dim,
            )
        return request.vector, None
    name = request.unique_name or ""
    file_id = store.file_ids(session, [name])[name]
    stored = session.scalar(
        select(Embedding.vector).where(Embedding.space_id == space.id, Embedding.file_id == file_id)
    )
    if stored is None:
        raise EmbeddingNotFound(
            f"{name!r} has no embedding in {space.name!r}: generate or insert "
            "one first, or search by vector.",
            unique_name=name,
            space=space.name,
        )
    return stored, file_id


def index_settings(method: Method, limit: int, indexed_rows: int) -> dict[str, int | str]:
    """What a search through the index sets for its transaction (`set_local_statement`)."""
    settings: dict[str, int | str] = {}
    if limit > EF_SEARCH:  # EF_SEARCH itself is set as each connection opens
        settings["hnsw.ef_search"] = min(limit, MAX_EF_SEARCH)
    if method == "iterative_index":
        # enable_sort off: the index is wanted (many match); a planner that underrates
        # the filter's share could sort the space's vectors instead.
        settings.update(
            {
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": MAX_SCAN_TUPLES,
                "enable_sort": "off",
            }
        )
    elif indexed_rows < SMALL_INDEX:
        # A few thousand vectors: PostgreSQL's planner would rather sort them all (it does
        # not count reading each one from TOAST) than walk the graph, and the scores of all
        # are computed before the sort.
        settings["enable_sort"] = "off"
    return settings


def set_local_statement(settings: dict[str, int | str]) -> Select[Any]:
    """SET LOCAL each setting (for this transaction), in one statement."""
    return _set_local_statement(tuple(settings.items()))


@functools.lru_cache(maxsize=64)
def _set_local_statement(settings: tuple[tuple[str, int | str], ...]) -> Select[Any]:
    return select(*(func.set_config(name, str(value), literal(True)) for name, value in settings))


def ranked_items(rows: Sequence[Any], leave_out: int | None, k: int) -> list[SimilarItem]:
    """The best `k` of rows (unique_name, file_id, score) from `index_query` or `exact_query`,
    best first, without the file `leave_out`."""
    items = sorted(
        (
            SimilarItem(unique_name=row[0], score=float(row[2]))
            for row in rows
            if row[1] != leave_out
        ),
        key=lambda item: -item.score,
    )
    return items[:k]


def similar_items(
    *, session: Session, request: SimilarityQuery, exact_threshold: int | None = None
) -> SimilarItems:
    """The `request.k` files most similar to a file's vector or a given vector, best first.
    `exact_threshold`: scan exactly up to this many matching vectors, instead of
    `exact_limit` (tests set 0 to force the index)."""
    space = spaces.space_for_read(session, request.model_name)
    vector, leave_out = _target(session, space, request)
    conditions = search_conditions(session, request)
    limit = request.k + (1 if leave_out is not None else 0)

    method: Method
    matching: int | None = None
    indexed = space.index_name is not None  # built yet? (engine/embeddings/indexing.py)
    if conditions:
        if exact_threshold is None:
            exact_threshold = exact_limit(space.indexed_rows) if indexed else EXACT_THRESHOLD
        cap = max(exact_threshold, limit)
        matching = _count(session, space, conditions, cap)
        # Counted to the end, the matching files are no more than the count has just read:
        # driving the exact scan from them costs the same again, plus their vectors.
        few_files = matching <= cap
        method = "exact" if few_files or not indexed else "iterative_index"
    else:
        few_files = False
        method = "index" if indexed else "exact"
    rows: list[Any] = []
    if method != "exact":
        settings = index_settings(method, limit, space.indexed_rows)
        if settings:
            session.execute(set_local_statement(settings))
        # On the session's connection: a Core statement needs none of the ORM's handling.
        rows = list(
            session.connection().execute(index_query(space, limit, conditions), bind_vector(vector))
        )
        if len(rows) < limit:
            if matching is None:
                matching = _count(session, space, conditions, limit)
            if len(rows) < min(limit, matching):
                method = "exact"
    if method == "exact":
        rows = list(
            session.connection().execute(
                exact_query(space, limit, conditions, few_files=few_files), bind_vector(vector)
            )
        )
    return SimilarItems(
        space=space.name, method=method, items=ranked_items(rows, leave_out, request.k)
    )
