"""Embeddings: import vectors in batches, read them back, similarity search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from engine.api.deps import KeyGiven, ReadKey, SessionDep, WriteKey, in_one_transaction
from engine.api.routing import JSONRoute
from engine.api.schemas import (
    EmbeddingBatch,
    EmbeddingBatchResult,
    EmbeddingSpaceInfo,
    EmbeddingVectors,
    EmbeddingVectorsRequest,
    SimilarItems,
    SimilarityQuery,
)
from engine.embeddings import imports, indexing, search, store

router = APIRouter(tags=["embeddings"], route_class=JSONRoute)


@router.post("/embeddings/batch", response_model=EmbeddingBatchResult)
def insert_batch(body: EmbeddingBatch, session: SessionDep, _: WriteKey) -> EmbeddingBatchResult:
    """Store up to 100 vectors (all or nothing); batches with the same `session_id` are
    counted on one job."""
    return imports.import_batch(session=session, batch=body)


@router.get("/embeddings/vectors", response_model=EmbeddingVectors)
def get_vectors(
    session: SessionDep,
    _: ReadKey,
    unique_names: Annotated[list[str], Query(min_length=1, max_length=1000)],
    model_name: str,
) -> EmbeddingVectors:
    return store.get_vectors(session=session, unique_names=unique_names, model_name=model_name)


@router.post("/embeddings/vectors", response_model=EmbeddingVectors)
def post_vectors(
    body: EmbeddingVectorsRequest, session: SessionDep, _: ReadKey
) -> EmbeddingVectors:
    """The same as GET, with the names in a JSON body."""
    return store.get_vectors(
        session=session, unique_names=body.unique_names, model_name=body.model_name
    )


@router.get("/embeddings/spaces", response_model=list[EmbeddingSpaceInfo])
def list_spaces(session: SessionDep, _: ReadKey) -> list[EmbeddingSpaceInfo]:
    """Every embedding space: its dimension, vectors and the state of its HNSW index."""
    return indexing.space_info(session)


SIMILAR_PATH = "/search/similar"  # also answered before routing (engine/api/fast_search.py)


@router.post(SIMILAR_PATH, response_model=SimilarItems)
async def similar(body: SimilarityQuery, request: Request, key: KeyGiven) -> SimilarItems:
    """The k files most similar (cosine) to a file's vector or to a given vector."""
    # The key check, the search and the commit in one thread-pool call (latency, bench/README).
    return await run_in_threadpool(
        in_one_transaction,
        request,
        key,
        "read",
        lambda session: search.similar_items(session=session, request=body),
    )
