"""Embedding calls (sections 7.6-7.8 of the SDK manual) and similarity search.

Vectors computed elsewhere are welcome: a `model_name` that is not a registered embedding model
names an embedding space of that name, whose dimension is set by its first insert. The manual's
tables call the model parameter `model_id` where its signatures say `model_name`: both are
accepted as keywords.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic_core import to_json

from sdk._base import BaseClient
from sdk.errors import BadRequest
from sdk.schemas import (
    MAX_EMBEDDING_BATCH,
    EmbeddingBatchResult,
    EmbeddingSpaceInfo,
    EmbeddingVectors,
    SimilarItems,
)


def _model(model_name: str | None, model_id: str | None, *, default: str | None = None) -> str:
    if model_id and model_name and model_id != model_name:
        raise BadRequest(
            f"model_id {model_id!r} and model_name {model_name!r} differ; they are "
            "two names for one argument: pass one.",
            code="invalid_input",
        )
    name = model_name or model_id or default
    if not name:
        raise BadRequest(
            "Name the model (model_name): a registered embedding model, or any "
            "name for vectors computed elsewhere.",
            code="invalid_input",
        )
    return name


def _floats(values: Iterable[Any]) -> list[float]:
    """A vector as plain floats (numpy arrays and tensors' `.tolist()` welcome)."""
    tolist = getattr(values, "tolist", None)
    return list(map(float, tolist() if callable(tolist) else values))


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """Request arguments sending `body` as JSON written by pydantic-core: ~10x faster than
    the json module for the thousands of floats of a vector (0.1 ms instead of 1.2 ms for a
    2048-d vector)."""
    return {"content": to_json(body), "headers": {"Content-Type": "application/json"}}


def _entries(embedding_list: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    entries = []
    for index, entry in enumerate(embedding_list):
        name = entry.get("uniqueName", entry.get("unique_name"))
        if name is None or "embeddings" not in entry:
            raise BadRequest(
                f'embedding_list[{index}] needs "uniqueName" and "embeddings".',
                code="invalid_embeddings",
            )
        vector = _floats(entry["embeddings"])
        # a sum is finite when every number is (or it overflowed: then the walk finds none)
        bad = (
            None
            if math.isfinite(sum(vector))
            else next((v for v in vector if not math.isfinite(v)), None)
        )
        if bad is not None:
            raise BadRequest(
                f"embedding_list[{index}] ({name!r}) holds {bad!r}, not a finite "
                "number. Nothing was sent.",
                code="invalid_embeddings",
            )
        entries.append({"uniqueName": name, "embeddings": vector})
    return entries


def _dimension(vector_dimension: Sequence[int] | int | None) -> list[int]:
    if vector_dimension is None:
        raise BadRequest(
            "Pass vector_dimension, the vectors' length as a list, e.g. [2048].",
            code="invalid_input",
        )
    if isinstance(vector_dimension, int):
        return [vector_dimension]
    return [int(d) for d in vector_dimension]


class EmbeddingCalls(BaseClient):
    def insert_image_embeddings_batch(
        self,
        embedding_list: Sequence[Mapping[str, Any]],
        model_name: str | None = None,
        vector_dimension: Sequence[int] | int | None = None,
        session_id: str = "",
        *,
        model_id: str | None = None,
    ) -> dict[str, Any]:
        """Store vectors for files given by unique name: `[{"uniqueName": ...,
        "embeddings": [...]}, ...]`, up to 100 of them, all of `vector_dimension` (e.g.
        `[2048]`). All or nothing: an unknown unique name or an invalid vector stores none.

        Calls with the same non-empty `session_id` are counted on one job, so a large import
        shows as one job with progress. Returns `job_id`, `session_id`, `space`, `dimension`,
        `written` and `total` (entries received by the job so far).
        """
        if len(embedding_list) > MAX_EMBEDDING_BATCH:
            raise BadRequest(
                f"embedding_list holds {len(embedding_list)} entries; a batch holds at most "
                f"{MAX_EMBEDDING_BATCH}. Use insert_image_embeddings, which sends any number in "
                "batches.",
                code="embedding_batch_too_large",
                details={"count": len(embedding_list), "limit": MAX_EMBEDDING_BATCH},
            )
        body = {
            "embedding_list": _entries(embedding_list),
            "model_name": _model(model_name, model_id),
            "vector_dimension": _dimension(vector_dimension),
            "session_id": session_id or "",
        }
        result = EmbeddingBatchResult.model_validate(self._post("/embeddings/batch", **_json(body)))
        return result.model_dump()

    def insert_image_embeddings(
        self,
        embedding_list: Sequence[Mapping[str, Any]],
        model_name: str | None = None,
        vector_dimension: Sequence[int] | int | None = None,
        *,
        model_id: str | None = None,
    ) -> dict[str, Any]:
        """Store any number of vectors (see `insert_image_embeddings_batch`), sent in batches of
        up to 99 under one new session id, so the import is one job.

        Each batch is all or nothing; should one be refused, the batches before it stay stored
        and the error says how many were. Returns `job_id`, `session_id`, `space`,
        `dimension`, `written` (all batches) and `batches`.
        """
        name = _model(model_name, model_id)
        dimension = _dimension(vector_dimension)
        session_id = f"import-{uuid.uuid4().hex}"
        written, batches, last = 0, 0, None
        for start in range(0, len(embedding_list), MAX_EMBEDDING_BATCH):
            batch = embedding_list[start : start + MAX_EMBEDDING_BATCH]
            try:
                last = self.insert_image_embeddings_batch(batch, name, dimension, session_id)
            except BadRequest as exc:
                if written:
                    exc.message = (
                        f"{exc.message} (entries {start}-{start + len(batch) - 1}; "
                        f"the {written} entries before them were stored)"
                    )
                    exc.args = (exc.message,)
                raise
            written += int(last["written"])
            batches += 1
        if last is None:
            raise BadRequest("embedding_list is empty.", code="invalid_embeddings")
        return {**last, "written": written, "batches": batches}

    def get_embedding_vector(
        self,
        unique_names: Sequence[str] | str,
        model_name: str | None = None,
        *,
        model_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The stored vectors of the files, in the order given: `[{"uniqueName": ...,
        "embeddings": [...] or None when the file has none for this model}]`."""
        names = [unique_names] if isinstance(unique_names, str) else list(unique_names)
        body = {"unique_names": names, "model_name": _model(model_name, model_id)}
        result = EmbeddingVectors.model_validate(self._post("/embeddings/vectors", json=body))
        return [item.model_dump(by_alias=True) for item in result.items]

    def list_embedding_spaces(self) -> list[dict[str, Any]]:
        """Every embedding space: `name`, `dimension`, `vectors`, and its HNSW `index`
        (`none` until a worker builds it once writes go quiet, `building`, `rebuilding` or
        `ready`) with `indexed_vectors`, `index_built_at` and `index_build_seconds`."""
        return [
            EmbeddingSpaceInfo.model_validate(space).model_dump()
            for space in self._get("/embeddings/spaces")
        ]

    def get_similar_items(
        self,
        unique_name: str | None = None,
        vector: Sequence[float] | None = None,
        model_name: str = "default",
        k: int = 10,
        collection_id: int | str | None = None,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
        *,
        model_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The `k` files most similar (cosine) to file `unique_name`'s vector or to `vector`,
        best first, as `[{"uniqueName": ..., "unique_name": ..., "score": 1 - cosine
        distance}]` (`uniqueName` as items and vectors spell it; `unique_name` kept for earlier
        scripts); optionally only among a collection's files and/or those matching `query` and
        `filter`."""
        body = {
            "unique_name": unique_name,
            "vector": None if vector is None else _floats(vector),
            "model_name": _model(
                None if model_name == "default" and model_id else model_name,
                model_id,
                default="default",
            ),
            "k": k,
            "collection_id": collection_id,
            "query": query,
            "filter": dict(filter) if filter is not None else None,
        }
        result = SimilarItems.model_validate(self._post("/search/similar", **_json(body)))
        return [{"uniqueName": item.unique_name, **item.model_dump()} for item in result.items]
