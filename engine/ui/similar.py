"""The item page's similar items: the k nearest files in an embedding space, among the
results of the current query, found by the engine's similarity search (docs/similarity.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.embeddings import Embedding, EmbeddingSpace
from engine.db.models import File
from engine.embeddings.search import similar_items
from sdk.schemas import SimilarityQuery

K = 12


@dataclass(frozen=True)
class Neighbour:
    id: int
    unique_name: str
    score: float


def spaces_of(*, session: Session, file_id: int) -> list[str]:
    """The embedding spaces holding a vector of the file, by name."""
    return list(
        session.scalars(
            select(EmbeddingSpace.name)
            .join(Embedding, Embedding.space_id == EmbeddingSpace.id)
            .where(Embedding.file_id == file_id)
            .distinct()
            .order_by(EmbeddingSpace.name)
        )
    )


def nearest(*, session: Session, unique_name: str, space: str, query: str) -> list[Neighbour]:
    """The `K` files nearest to `unique_name` in `space` that `query` selects, best first."""
    found = similar_items(
        session=session,
        request=SimilarityQuery(
            unique_name=unique_name, model_name=space, k=K, query=query or None
        ),
    )
    names = [item.unique_name for item in found.items]
    ids = dict(
        session.execute(select(File.unique_name, File.id).where(File.unique_name.in_(names))).all()
    )
    return [
        Neighbour(id=ids[item.unique_name], unique_name=item.unique_name, score=item.score)
        for item in found.items
        if item.unique_name in ids
    ]
