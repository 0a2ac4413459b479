"""Embedding import and lookup (SDK manual 7.6-7.8) through the real API, and `write_embeddings`
(what embedding job chunks call) against real Postgres + pgvector."""

from __future__ import annotations

import math
import random
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engine.db.embeddings import Embedding, EmbeddingSpace
from engine.db.jobs import Job
from engine.db.models import Model, ModelVersion
from engine.embeddings.indexing import build_due
from engine.embeddings.store import write_embeddings
from engine.errors import EmbeddingDimensionMismatch
from engine.hosting.reference import ModelVersionRef
from sdk.errors import BadRequest, Conflict, NotFound
from tests.fixtures.embedding_factory import make_files
from tests.test_indexing import building


def _vector(dim: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(dim)]


def _count(session: Session) -> int:
    session.rollback()
    return int(session.scalar(select(func.count()).select_from(Embedding)) or 0)


def test_the_seed_examples_run_as_written(client: Any, session: Session) -> None:
    make_files(session, "example_collection", 1)
    session.execute(text("UPDATE files SET unique_name = 'example_collection_example_image.jpg'"))
    session.commit()
    vector = _vector(2048, 1)
    result = client.insert_image_embeddings_batch(
        [
            {
                "uniqueName": "example_collection_example_image.jpg",
                "embeddings": vector,
            }
        ],
        "Resnet50",
        [2048],
        "",
    )
    assert result["space"] == "Resnet50"
    assert result["written"] == 1
    assert (
        client.insert_image_embeddings(
            [
                {
                    "uniqueName": "example_collection_example_image.jpg",
                    "embeddings": vector,
                }
            ],
            "Resnet50",
            [2048],
        )["written"]
        == 1
    )
    [got] = client.get_embedding_vector(["example_collection_example_image.jpg"], "Resnet50")
    assert got["uniqueName"] == "example_collection_example_image.jpg"
    assert np.allclose(got["embeddings"], vector, atol=1e-6)
    # The manual's tables call it model_id: accepted as a keyword.
    [again] = client.get_embedding_vector(
        ["example_collection_example_image.jpg"], model_id="Resnet50"
    )
    assert again == got
    assert _count(session) == 1


def test_a_batch_of_101_is_refused_by_the_sdk_and_by_the_engine(
    client: Any, api_url: str, admin_key: str, session: Session
) -> None:
    names = make_files(session, "c", 101)
    entries = [{"uniqueName": n, "embeddings": _vector(4, i)} for i, n in enumerate(names)]
    with pytest.raises(BadRequest, match="at most 100"):
        client.insert_image_embeddings_batch(entries, "ext", [4])
    response = httpx.post(
        f"{api_url}/api/v1/embeddings/batch",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={"embedding_list": entries, "model_name": "ext", "vector_dimension": [4]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "embedding_batch_too_large"
    assert "at most 100" in error["message"]
    assert error["details"] == {"count": 101, "limit": 100}
    # 100 is accepted (LayerNext's limit), and insert_image_embeddings sends all 101 in
    # batches, as one job.
    assert client.insert_image_embeddings_batch(entries[:100], "ext", [4])["written"] == 100
    result = client.insert_image_embeddings(entries, "ext", [4])
    assert (result["written"], result["batches"], result["total"]) == (101, 2, 101)
    assert _count(session) == 101


def test_a_later_insert_of_another_dimension_is_refused_naming_both(
    client: Any, session: Session
) -> None:
    [name] = make_files(session, "c", 1)
    client.insert_image_embeddings_batch(
        [{"uniqueName": name, "embeddings": _vector(4, 0)}], "clip-ext", [4]
    )
    with pytest.raises(Conflict) as caught:
        client.insert_image_embeddings_batch(
            [{"uniqueName": name, "embeddings": _vector(5, 0)}], "clip-ext", [5]
        )
    assert "4-d" in caught.value.message
    assert "5-d" in caught.value.message
    assert caught.value.details["expected"] == 4


@pytest.mark.parametrize(
    ("vector", "dimension", "needle"),
    [
        ([1.0, 2.0, 3.0], [4], "has 3 numbers, not 4"),
        ([1.0, math.nan, 0.0, 1.0], [4], "not a finite number"),
        ([1.0, math.inf, 0.0, 1.0], [4], "not a finite number"),
        ([0.0, 0.0, 0.0, 0.0], [4], "all zeros"),
        ([1.0, 1e6, 0.0, 1.0], [4], "halfvec"),
        ([1.0, 2.0, 3.0, 4.0], [1, 4], "one number"),
    ],
)
def test_invalid_vectors_are_refused_and_nothing_is_written(
    client: Any, session: Session, vector: list[float], dimension: list[int], needle: str
) -> None:
    names = make_files(session, "c", 2)
    entries = [
        {"uniqueName": names[0], "embeddings": [1.0, 0.0, 0.0, 0.0]},
        {"uniqueName": names[1], "embeddings": vector},
    ]
    with pytest.raises(BadRequest, match=needle):
        client.insert_image_embeddings_batch(entries, "ext", dimension)
    assert _count(session) == 0


def test_the_engine_refuses_non_finite_numbers_itself(
    api_url: str, admin_key: str, session: Session
) -> None:
    [name] = make_files(session, "c", 1)
    body = (
        '{"embedding_list": [{"uniqueName": "' + name + '", "embeddings": '
        '[1.0, NaN, 0.0, Infinity]}], "model_name": "ext", "vector_dimension": [4]}'
    )
    response = httpx.post(
        f"{api_url}/api/v1/embeddings/batch",
        content=body,
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert _count(session) == 0


def test_unknown_unique_names_are_listed_and_nothing_is_written(
    client: Any, session: Session
) -> None:
    names = make_files(session, "c", 3)
    entries = [
        {"uniqueName": n, "embeddings": _vector(4, i)}
        for i, n in enumerate([*names, "nope_1.jpg", "nope_2.jpg"])
    ]
    with pytest.raises(NotFound) as caught:
        client.insert_image_embeddings_batch(entries, "ext", [4])
    assert caught.value.details["missing"] == ["nope_1.jpg", "nope_2.jpg"]
    assert "nope_1.jpg" in caught.value.message
    assert _count(session) == 0
    session.rollback()
    assert session.scalar(select(func.count()).select_from(EmbeddingSpace)) == 0


def test_reinserting_replaces_the_vector(client: Any, session: Session) -> None:
    names = make_files(session, "c", 2)
    first = [{"uniqueName": n, "embeddings": _vector(8, i)} for i, n in enumerate(names)]
    client.insert_image_embeddings_batch(first, "ext", [8])
    second = [{"uniqueName": names[0], "embeddings": _vector(8, 99)}]
    client.insert_image_embeddings_batch(second, "ext", [8])
    assert _count(session) == 2
    got = client.get_embedding_vector([names[0], names[1]], "ext")
    assert np.allclose(got[0]["embeddings"], _vector(8, 99), atol=1e-6)
    assert np.allclose(got[1]["embeddings"], _vector(8, 1), atol=1e-6)


def test_vectors_are_stored_and_searched_as_float32_exactly(client: Any, session: Session) -> None:
    # Vectors travel to PostgreSQL in pgvector's binary form (store.PackedVector): what comes
    # back is the float32 nearest to each number sent, over the whole range a space accepts.
    names = make_files(session, "f32", 3)
    vectors = [
        [0.1, -2.5e-7, 65504.0, 1 / 3, -1e-30, 123456.789e-3],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [-0.7, 0.0, 0.0, 0.0, 0.0, 1e-3],
    ]
    client.insert_image_embeddings_batch(
        [{"uniqueName": n, "embeddings": v} for n, v in zip(names, vectors, strict=True)],
        "ext",
        [6],
    )
    got = client.get_embedding_vector(names, "ext")
    for item, vector in zip(got, vectors, strict=True):
        assert np.array_equal(
            np.asarray(item["embeddings"], np.float32), np.asarray(vector, np.float32)
        )
    # A search by a stored vector finds it first, at a score of 1 (the same float32 numbers).
    first = client.get_similar_items(vector=vectors[0], model_name="ext", k=3)
    assert first[0]["unique_name"] == names[0]
    assert first[0]["score"] == pytest.approx(1.0, abs=1e-6)
    assert [item["unique_name"] for item in first] == [names[0], names[1], names[2]]


def test_batches_of_one_session_are_one_job_with_progress(client: Any, session: Session) -> None:
    names = make_files(session, "c", 5)
    entries = [{"uniqueName": n, "embeddings": _vector(4, i)} for i, n in enumerate(names)]
    one = client.insert_image_embeddings_batch(entries[:3], "ext", [4], "import-42")
    two = client.insert_image_embeddings_batch(entries[3:], "ext", [4], "import-42")
    assert one["job_id"] == two["job_id"]
    assert (one["total"], two["total"]) == (3, 5)
    alone = client.insert_image_embeddings_batch(entries[:1], "ext", [4])
    assert alone["job_id"] != one["job_id"]
    session.rollback()
    job = session.get(Job, one["job_id"])
    assert job is not None
    assert (job.kind, job.platform, job.status, job.session_id) == (
        "embedding_import",
        "none",
        "succeeded",
        "import-42",
    )
    assert (job.total, job.done) == (5, 5)
    job_ids = set(session.scalars(select(Embedding.job_id)))
    assert job_ids == {one["job_id"], alone["job_id"]}
    # A session id belongs to one space.
    with pytest.raises(Conflict, match="import-42"):
        client.insert_image_embeddings_batch(
            [{"uniqueName": names[0], "embeddings": _vector(6, 0)}], "other", [6], "import-42"
        )


def test_reading_vectors_of_an_unknown_model_or_file_is_a_clear_error(
    client: Any, session: Session
) -> None:
    names = make_files(session, "c", 2)
    client.insert_image_embeddings_batch(
        [{"uniqueName": names[0], "embeddings": _vector(4, 0)}], "ext", [4]
    )
    with pytest.raises(NotFound, match="Spaces with embeddings: ext"):
        client.get_embedding_vector(names, "never-inserted")
    with pytest.raises(NotFound, match=r"nope\.jpg"):
        client.get_embedding_vector(["nope.jpg"], "ext")
    got = client.get_embedding_vector(names, "ext")
    assert [g["embeddings"] is None for g in got] == [False, True]
    with pytest.raises(BadRequest, match="cannot contain"):
        client.insert_image_embeddings_batch(
            [{"uniqueName": names[0], "embeddings": _vector(4, 0)}], "ext@2", [4]
        )
    with pytest.raises(NotFound, match="system default embedding model"):
        client.get_similar_items(unique_name=names[0])


def _register(session: Session, name: str, embedding_dim: int | None) -> ModelVersionRef:
    model = Model(name=name, application="embedding")
    session.add(model)
    session.flush()
    version = ModelVersion(
        model_id=model.id,
        version=1,
        bundle_uri=f"file:///bundles/{name}",
        sha256="f" * 64,
        size_bytes=1,
        embedding_dim=embedding_dim,
    )
    session.add(version)
    session.commit()
    return ModelVersionRef(
        id=version.id,
        name=name,
        version=1,
        application="embedding",
        bundle_uri=version.bundle_uri,
        sha256=version.sha256,
        embedding_dim=embedding_dim,
    )


def test_write_embeddings_fills_the_versions_space_and_records_its_dimension(
    client: Any, session: Session
) -> None:
    names = make_files(session, "c", 3)
    ids = {n: i for n, i in session.execute(text("SELECT unique_name, id FROM files"))}
    ref = _register(session, "tiny_embed", None)
    vectors = {ids[n]: _vector(8, i) for i, n in enumerate(names)}
    write_embeddings(session=session, version=ref, vectors=vectors, job_id=None)
    session.commit()
    space = session.scalars(select(EmbeddingSpace)).one()
    assert (space.name, space.dim, space.model_version_id) == ("tiny_embed@1", 8, ref.id)
    assert space.index_name is None  # writes never build it: a worker does, in bulk
    assert session.get(ModelVersion, ref.id).embedding_dim == 8  # type: ignore[union-attr]
    # A redelivered chunk upserts: no duplicates.
    write_embeddings(session=session, version=ref, vectors=vectors, job_id=None)
    session.commit()
    assert _count(session) == 3
    # The registered name (and name@N) reads the version's space; inserts go there too.
    got = client.get_embedding_vector(names, "tiny_embed")
    assert np.allclose(got[2]["embeddings"], _vector(8, 2), atol=1e-6)
    assert client.get_embedding_vector(names, "tiny_embed@1") == got
    result = client.insert_image_embeddings_batch(
        [{"uniqueName": names[0], "embeddings": _vector(8, 7)}], "tiny_embed", [8]
    )
    assert result["space"] == "tiny_embed@1"
    nearest = client.get_similar_items(vector=_vector(8, 2), model_name="tiny_embed", k=1)
    assert nearest[0]["unique_name"] == names[2]
    assert nearest[0]["score"] == pytest.approx(1.0, abs=1e-6)
    # The model's output must keep its dimension.
    with pytest.raises(EmbeddingDimensionMismatch):
        write_embeddings(
            session=session, version=ref, vectors={ids[names[0]]: _vector(9, 0)}, job_id=None
        )
    session.rollback()
    with pytest.raises(Conflict, match="8-d"):
        client.insert_image_embeddings_batch(
            [{"uniqueName": names[0], "embeddings": _vector(4, 7)}], "tiny_embed", [4]
        )


def test_write_embeddings_refuses_output_of_another_declared_dimension(session: Session) -> None:
    make_files(session, "c", 1)
    file_id = session.scalar(text("SELECT id FROM files"))
    ref = _register(session, "declared", 16)
    with pytest.raises(EmbeddingDimensionMismatch, match="16-d"):
        write_embeddings(
            session=session, version=ref, vectors={file_id: _vector(8, 0)}, job_id=None
        )
    session.rollback()
    write_embeddings(session=session, version=ref, vectors={file_id: _vector(16, 0)}, job_id=5)
    session.commit()
    assert session.scalar(select(Embedding.job_id)) == 5


def test_deleting_the_model_drops_its_spaces_hnsw_index(client: Any, session: Session) -> None:
    names = make_files(session, "c", 2)
    ids = {n: i for n, i in session.execute(text("SELECT unique_name, id FROM files"))}
    ref = _register(session, "short_lived", None)
    write_embeddings(
        session=session,
        version=ref,
        vectors={ids[n]: _vector(8, i) for i, n in enumerate(names)},
        job_id=None,
    )
    session.commit()
    assert [b.rows for b in build_due(session.get_bind())] == [2]
    index = session.scalars(select(EmbeddingSpace.index_name)).one()
    assert index is not None

    def indexes() -> set[str]:
        session.rollback()
        return set(
            session.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'"))
        )

    assert index in indexes()
    space_id = session.scalars(select(EmbeddingSpace.id)).one()
    session.rollback()
    with building(session.get_bind(), space_id), pytest.raises(Conflict, match="being built"):
        client.delete_model("short_lived")  # the drop would wait for the build
    client.delete_model("short_lived")
    assert index not in indexes()
    assert _count(session) == 0
    assert not list(session.scalars(select(EmbeddingSpace)))
