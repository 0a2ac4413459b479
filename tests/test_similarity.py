"""Similarity search against brute force: recall on clustered and random vectors, the HNSW
index in the plan, filtered searches (collection, a 1% query) that still return k results."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

import engine.embeddings.search as search_module
from engine.api import fast_search
from engine.db.embeddings import EmbeddingSpace
from engine.db.session import HNSW_EF_SEARCH
from engine.embeddings.indexing import HNSW_EF_CONSTRUCTION, HNSW_M, build_due
from engine.embeddings.search import (
    bind_vector,
    exact_limit,
    index_query,
    search_conditions,
    similar_items,
)
from sdk import Client
from sdk.schemas import SimilarityQuery
from tests.fixtures.embedding_factory import collection_id, make_files

DIM = 64
CLUSTERS = 200
PER_CLUSTER = 10
N = CLUSTERS * PER_CLUSTER
K = 10


def _clustered(rng: np.random.Generator, clusters: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """`clusters` tight groups of PER_CLUSTER vectors: a group's members are each other's
    nearest neighbours. Rows are ordered so that member j of every cluster comes in turn."""
    centers = rng.normal(size=(clusters, dim))
    points = np.repeat(centers, PER_CLUSTER, axis=0) + 0.05 * rng.normal(
        size=(clusters * PER_CLUSTER, dim)
    )
    return centers, points


def _top(
    points: np.ndarray, query: np.ndarray, k: int, among: np.ndarray | None = None
) -> set[int]:
    """Brute-force cosine top-k (indices), optionally only among the indices `among`."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    if among is not None:
        mask = np.full(len(points), -np.inf)
        mask[among] = 0
        scores = scores + mask
    return set(np.argsort(-scores)[:k].tolist())


def _insert(client: Any, names: list[str], points: np.ndarray, model: str) -> None:
    entries = [{"uniqueName": n, "embeddings": p} for n, p in zip(names, points, strict=True)]
    client.insert_image_embeddings(entries, model, [points.shape[1]])


@pytest.fixture
def lake(client: Any, session: Session) -> dict[str, Any]:
    """2,000 64-d clustered vectors in two collections (even/odd rows); 1% tagged `rare`."""
    rng = np.random.default_rng(7)
    centers, points = _clustered(rng, CLUSTERS, DIM)
    metadata = [{"bucket": "rare" if i % 100 == 3 else "common"} for i in range(N)]
    names = make_files(session, "lake", N, metadata=metadata)
    make_files(session, "even", 0)
    session.execute(
        text(
            "INSERT INTO collection_files (collection_id, file_id) "
            "SELECT c.id, f.id FROM collections c, files f "
            "WHERE c.name = 'even' AND f.unique_name ~ '_img[0-9]*[02468][.]jpg$'"
        )
    )
    session.commit()
    _insert(client, names, points, "clustered")
    # What a worker's sweep does once the writes go quiet (tests/test_indexing.py).
    assert [build.rows for build in build_due(session.get_bind())] == [N]
    return {"names": names, "points": points, "centers": centers, "rng": rng}


def test_recall_at_10_is_perfect_on_clustered_vectors(client: Any, lake: dict[str, Any]) -> None:
    names, points, centers = lake["names"], lake["points"], lake["centers"]
    rng = lake["rng"]
    recalls, latencies = [], []
    for c in rng.choice(CLUSTERS, size=50, replace=False):
        query = centers[c] + 0.01 * rng.normal(size=DIM)
        started = time.perf_counter()
        found = client.get_similar_items(vector=query, model_name="clustered", k=K)
        latencies.append(time.perf_counter() - started)
        truth = {names[i] for i in _top(points, query, K)}
        recalls.append(len(truth & {f["unique_name"] for f in found}) / K)
        scores = [f["score"] for f in found]
        assert scores == sorted(scores, reverse=True)
    print(
        f"\nclustered 2000x64: recall@10 {np.mean(recalls):.3f}, "
        f"median latency {1000 * np.median(latencies):.1f} ms (HTTP round trip)"
    )
    assert np.mean(recalls) == 1.0


def test_by_unique_name_the_files_cluster_comes_first_without_itself(
    client: Any, lake: dict[str, Any]
) -> None:
    names = lake["names"]
    for row in (0, 1234, 1999):
        found = client.get_similar_items(names[row], None, "clustered", PER_CLUSTER - 1)
        cluster = row // PER_CLUSTER
        expected = {names[cluster * PER_CLUSTER + j] for j in range(PER_CLUSTER)} - {names[row]}
        assert {f["unique_name"] for f in found} == expected
        assert all(0.9 < f["score"] <= 1.0 for f in found)


def test_the_hnsw_index_exists_and_the_unfiltered_search_uses_it(
    lake: dict[str, Any], session: Session
) -> None:
    session.rollback()
    space = session.scalars(select(EmbeddingSpace).where(EmbeddingSpace.name == "clustered")).one()
    definition = session.scalar(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": space.index_name}
    )
    assert definition is not None
    assert "USING hnsw" in definition
    assert f"halfvec({DIM})" in definition
    assert "halfvec_cosine_ops" in definition
    assert f"WHERE (space_id = {space.id})" in definition
    assert f"m='{HNSW_M}'" in definition
    assert f"ef_construction='{HNSW_EF_CONSTRUCTION}'" in definition

    # The query matches the index's expression and predicate: with sorting ruled out, the
    # ordered index scan is the plan. (At 2,000 64-d vectors and ef_search 100 the planner
    # may rightly prefer to sort them all.)
    assert session.scalar(text("SHOW hnsw.ef_search")) == "100"  # set as connections open
    session.execute(text("SET LOCAL enable_sort = off"))
    plan = _explain(session, index_query(space, K), lake["points"][0])
    assert f"Index Scan using {space.index_name}" in plan, plan

    # Filtered by a collection holding half the files, with statistics: the iterative index
    # scan is the plan (a 1% filter is planned as an exact scan of the few matches instead).
    session.execute(text("ANALYZE"))
    session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    request = SimilarityQuery(
        vector=[1.0] * DIM, model_name="clustered", collection_id=collection_id(session, "even")
    )
    conditions = search_conditions(session, request)
    plan = _explain(session, index_query(space, K, conditions), lake["points"][0])
    assert f"Index Scan using {space.index_name}" in plan, plan


def _explain(session: Session, statement: Any, vector: Any) -> str:
    compiled = statement.compile(dialect=session.get_bind().dialect)
    params = {**compiled.params, **bind_vector(vector)}
    cursor = session.connection().connection.cursor()
    cursor.execute("EXPLAIN " + str(compiled), params)
    return "\n".join(row[0] for row in cursor.fetchall())


def test_a_small_indexed_space_is_searched_through_its_graph_not_sorted(
    session: Session, lake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 2,000 vectors the planner would sort them all; the unfiltered search rules sorting out
    # for its transaction (with sorting ruled out the plan is the index scan, above), and only
    # for spaces that small.
    session.rollback()
    request = SimilarityQuery(vector=lake["points"][0].tolist(), model_name="clustered", k=K)
    assert similar_items(session=session, request=request).method == "index"
    assert session.scalar(text("SELECT current_setting('enable_sort')")) == "off"
    session.rollback()
    assert session.scalar(text("SELECT current_setting('enable_sort')")) == "on"  # LOCAL
    # A filtered search that goes through the graph rules sorting out too, whatever the size.
    filtered = request.model_copy(update={"query": "metadata.bucket = 'common'"})
    assert (
        similar_items(session=session, request=filtered, exact_threshold=0).method
        == "iterative_index"
    )
    assert session.scalar(text("SELECT current_setting('enable_sort')")) == "off"
    session.rollback()
    rare = request.model_copy(update={"query": "metadata.bucket = 'rare'"})
    assert similar_items(session=session, request=rare).method == "exact"  # 20 of 2,000 match
    assert session.scalar(text("SELECT current_setting('enable_sort')")) == "on"
    session.rollback()
    monkeypatch.setattr(search_module, "SMALL_INDEX", N)  # a space this big: the planner's way
    similar_items(session=session, request=request)
    assert session.scalar(text("SELECT current_setting('enable_sort')")) == "on"
    session.rollback()


def test_the_count_finds_matching_files_by_index_not_by_a_scan_it_hopes_to_stop_early(
    session: Session, lake: dict[str, Any]
) -> None:
    # With its LIMIT, a sequential scan of `files` looked cheap to the planner, as if the
    # matches were spread evenly; files uploaded together sit together, and at 100,000 files
    # the count for the last upload read the whole table. The GIN index serves `metadata`.
    session.rollback()
    late = [{"bucket": "late"}] * 40
    make_files(session, "late", 40, metadata=late)  # the table's last rows
    session.execute(text("ANALYZE files"))
    session.commit()
    space = session.scalars(select(EmbeddingSpace).where(EmbeddingSpace.name == "clustered")).one()
    scans = text("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'files'")
    for query, matching in (("metadata.bucket = 'late'", 0), ("metadata.bucket = 'rare'", 20)):
        conditions = search_conditions(
            session,
            SimilarityQuery(
                vector=lake["points"][0].tolist(), model_name="clustered", k=K, query=query
            ),
        )
        before = session.execute(scans).one()
        assert search_module._count(session, space, conditions, exact_limit(N)) == matching
        after = session.execute(scans).one()
        assert after[0] == before[0], "files read by a sequential scan"
        assert after[1] > before[1]
        # and only for the count: the statements after it plan as usual
        assert session.scalar(text("SELECT current_setting('enable_seqscan')")) == "on"
        session.rollback()


def test_filtered_searches_scan_exactly_only_while_few_vectors_match(
    session: Session, lake: dict[str, Any]
) -> None:
    # The limit grows as the square root of the space (exact scans cost per match, the graph
    # walk per vector passed over): 161 of these 2,000, 1,140 of 100,000.
    assert [exact_limit(n) for n in (2_000, 10_000, 100_000)] == [161, 360, 1_140]
    session.rollback()
    points, names = lake["points"], lake["names"]
    request = SimilarityQuery(vector=points[0].tolist(), model_name="clustered", k=K)
    common = request.model_copy(update={"query": "metadata.bucket = 'common'"})  # 1,980
    assert similar_items(session=session, request=common).method == "iterative_index"
    session.rollback()
    # What is counted is vectors in the space: 300 more `rare` files without one are not.
    make_files(session, "vectorless", 300, metadata=[{"bucket": "rare"}] * 300)
    rare = request.model_copy(update={"query": "metadata.bucket = 'rare'"})
    space = session.scalars(select(EmbeddingSpace).where(EmbeddingSpace.name == "clustered")).one()
    conditions = search_conditions(session, rare)
    assert search_module._count(session, space, conditions, 1_000) == 20
    assert search_module._count(session, space, conditions, 5) == 6  # stops past the cap
    result = similar_items(session=session, request=rare)
    assert result.method == "exact"
    among = np.array([i for i in range(N) if i % 100 == 3])
    assert {item.unique_name for item in result.items} == {
        names[i] for i in _top(points, points[0], K, among)
    }
    session.rollback()


def test_a_collection_filter_returns_k_results_from_the_collection(
    client: Any, session: Session, lake: dict[str, Any]
) -> None:
    names, points = lake["names"], lake["points"]
    even_id = collection_id(session, "even")
    evens = np.arange(0, N, 2)
    # The centre of a cluster: 5 of its members are odd, so filtered neighbours go further out.
    query = lake["centers"][17]
    found = client.get_similar_items(
        vector=query, model_name="clustered", k=K, collection_id=even_id
    )
    assert len(found) == K
    truth = {names[i] for i in _top(points, query, K, among=evens)}
    assert {f["unique_name"] for f in found} == truth


def test_a_query_selecting_1_percent_still_returns_k_results(
    client: Any, lake: dict[str, Any]
) -> None:
    names, points = lake["names"], lake["points"]
    rare = np.array([i for i in range(N) if i % 100 == 3])
    query = lake["centers"][100]
    found = client.get_similar_items(
        vector=query, model_name="clustered", k=K, query='metadata.bucket="rare"'
    )
    assert len(found) == K
    assert {f["unique_name"] for f in found} == {names[i] for i in _top(points, query, K, rare)}
    # Fewer matches than k: all of them.
    assert len(
        client.get_similar_items(
            vector=query, model_name="clustered", k=50, query='metadata.bucket="rare"'
        )
    ) == len(rare)


@pytest.mark.parametrize(
    "search",
    [
        {"query": 'metadata.bucket="rare"'},
        {"collection": "even"},
    ],
)
def test_the_iterative_index_scan_path_returns_k_results(
    session: Session, lake: dict[str, Any], search: dict[str, str]
) -> None:
    """With no exact-scan threshold, filtered searches go through the iterative index scan
    (falling back to an exact scan should it come back short)."""
    names, points = lake["names"], lake["points"]
    session.rollback()
    among = (
        np.array([i for i in range(N) if i % 100 == 3]) if "query" in search else np.arange(0, N, 2)
    )
    extra: dict[str, Any] = (
        {"query": search["query"]}
        if "query" in search
        else {"collection_id": collection_id(session, search["collection"])}
    )
    recalls, methods = [], []
    for c in (3, 50, 150):
        query = lake["centers"][c]
        request = SimilarityQuery(vector=query.tolist(), model_name="clustered", k=K, **extra)
        result = similar_items(session=session, request=request, exact_threshold=0)
        session.rollback()
        assert result.method in ("iterative_index", "exact")
        methods.append(result.method)
        assert len(result.items) == K
        truth = {names[i] for i in _top(points, query, K, among)}
        recalls.append(len(truth & {i.unique_name for i in result.items}) / K)
    print(f"\niterative {search}: recall@10 {np.mean(recalls):.3f}, methods {methods}")
    assert np.mean(recalls) >= 0.9


def test_random_vectors_recall_and_a_2048_d_space(client: Any, session: Session) -> None:
    rng = np.random.default_rng(11)
    # Unstructured 64-d vectors: the hard case for an approximate index.
    points = rng.normal(size=(1000, DIM))
    names = make_files(session, "random", len(points))
    _insert(client, names, points, "random64")
    # 2048-d (ResNet50's size) needs the halfvec index: 20 clusters of 10.
    centers, wide = _clustered(rng, 20, 2048)
    wide_names = make_files(session, "wide", len(wide))
    _insert(client, wide_names, wide, "Resnet50")
    assert sorted(build.rows for build in build_due(session.get_bind())) == [200, 1000]
    recalls = []
    for q in rng.normal(size=(30, DIM)):
        found = client.get_similar_items(vector=q, model_name="random64", k=K)
        truth = {names[i] for i in _top(points, q, K)}
        recalls.append(len(truth & {f["unique_name"] for f in found}) / K)
    print(f"\nrandom 1000x64: recall@10 {np.mean(recalls):.3f}")
    assert np.mean(recalls) >= 0.95

    recalls = []
    for c in range(20):
        query = centers[c] + 0.01 * rng.normal(size=2048)
        found = client.get_similar_items(vector=query, model_name="Resnet50", k=K)
        truth = {wide_names[i] for i in _top(wide, query, K)}
        recalls.append(len(truth & {f["unique_name"] for f in found}) / K)
    assert np.mean(recalls) == 1.0
    session.rollback()
    definition = session.scalar(
        text("SELECT indexdef FROM pg_indexes WHERE indexdef LIKE '%halfvec(2048)%'")
    )
    assert definition is not None


def test_searching_needs_one_target_of_the_right_dimension(
    client: Any, lake: dict[str, Any]
) -> None:
    from sdk.errors import BadRequest, NotFound

    with pytest.raises(BadRequest, match="either unique_name"):
        client.get_similar_items(model_name="clustered")
    with pytest.raises(BadRequest, match="not 64"):
        client.get_similar_items(vector=[1.0, 2.0], model_name="clustered")
    with pytest.raises(NotFound, match="not in the lake"):
        client.get_similar_items("missing.jpg", model_name="clustered")
    with pytest.raises(NotFound, match="collection"):
        client.get_similar_items(
            vector=lake["centers"][0], model_name="clustered", collection_id=999999
        )
    with pytest.raises(BadRequest):
        client.get_similar_items(
            vector=lake["centers"][0], model_name="clustered", query="metadata.bucket="
        )


def test_plain_searches_are_answered_before_routing_exactly_as_the_route_would(
    client: Any,
    session: Session,
    lake: dict[str, Any],
    make_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # engine/api/fast_search.py: the same statements on the raw connection; anything it does
    # not answer goes to the route, errors included.
    answered: list[str] = []
    search_fast = fast_search._search

    async def counted(*args: Any) -> Any:
        result = await search_fast(*args)
        answered.append("fast" if result is not None else "route")
        return result

    monkeypatch.setattr(fast_search, "_search", counted)
    points, names = lake["points"], lake["names"]
    client.get_similar_items(vector=points[1], model_name="clustered", k=K)  # records the key
    answered.clear()
    for row in (0, 777, 1999):
        found = client.get_similar_items(vector=points[row], model_name="clustered", k=K)
        session.rollback()
        route = similar_items(
            session=session,
            request=SimilarityQuery(vector=points[row].tolist(), model_name="clustered", k=K),
        )
        session.rollback()
        assert found == [
            {"uniqueName": item.unique_name, **item.model_dump()} for item in route.items
        ]
        assert names[row] in {f["unique_name"] for f in found}
    assert answered == ["fast"] * 3
    response = client._http.post(
        "/search/similar", json={"vector": points[0].tolist(), "model_name": "clustered", "k": K}
    )
    assert response.json()["method"] == "index"
    assert response.json()["space"] == "clustered"

    answered.clear()
    # Filters, searches by file and k above ef_search go to the route without a try.
    assert (
        len(
            client.get_similar_items(
                vector=points[0], model_name="clustered", k=K, query="metadata.bucket = 'rare'"
            )
        )
        == K
    )
    assert len(client.get_similar_items(names[0], None, "clustered", K)) == K
    assert len(client.get_similar_items(vector=points[0], model_name="clustered", k=150)) == 150
    # So does "default", which only the route resolves (to the default model's space).
    default = client._http.post(
        "/search/similar", json={"vector": points[0].tolist(), "model_name": "default", "k": K}
    )
    assert default.status_code == 404, default.text
    assert answered == []
    # Unknown keys and spaces, wrong dimensions: the route's own errors.
    for body, status, code in (
        ({"model_name": "nope"}, 404, "embedding_space_not_found"),
        ({"vector": [1.0, 2.0]}, 400, "invalid_input"),
    ):
        response = client._http.post(
            "/search/similar",
            json={"vector": points[0].tolist(), "model_name": "clustered", "k": K, **body},
        )
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    stranger = client._http.post(
        "/search/similar",
        headers={"Authorization": "Bearer mlk_x"},
        json={"vector": points[0].tolist(), "model_name": "clustered"},
    )
    assert stranger.status_code == 401
    # A key not used within the minute is recorded by the gate in front (engine/api/gate.py),
    # which hands the caller on: its first search is answered here too.
    fresh = make_key("read", name="fresh")
    answered.clear()
    with Client(client.url, fresh) as reader:
        for _ in range(2):
            reader.get_similar_items(vector=points[0], model_name="clustered", k=K)
    assert answered == ["fast", "fast"]
    session.rollback()
    assert session.scalar(text("SELECT last_used_at FROM api_keys WHERE name = 'fresh'"))


def test_the_fast_path_survives_its_connections_being_dropped(
    client: Any, session: Session, lake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own connections are not pinged before use: one PostgreSQL dropped (a restart, an
    # idle timeout) fails that search over to the route, and is replaced.
    outcomes: list[str] = []
    search_fast = fast_search._search

    async def counted(*args: Any) -> Any:
        try:
            result = await search_fast(*args)
        except Exception:
            outcomes.append("failed")
            raise
        outcomes.append("fast" if result is not None else "route")
        return result

    monkeypatch.setattr(fast_search, "_search", counted)
    points = lake["points"]
    client.get_similar_items(vector=points[1], model_name="clustered", k=K)  # records the key
    expected = client.get_similar_items(vector=points[5], model_name="clustered", k=K)
    dropped = session.execute(
        text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name"
        ),
        {"name": fast_search.APPLICATION_NAME},
    ).scalar()
    session.commit()
    assert dropped == 1
    outcomes.clear()
    for _ in range(2):
        assert client.get_similar_items(vector=points[5], model_name="clustered", k=K) == expected
    assert outcomes == ["failed", "fast"]


def test_fast_path_connections_are_reused_bounded_and_closed(database_url: str) -> None:
    async def scenario() -> None:
        connections = fast_search.Connections(database_url, size=2)
        first, second = await connections.take(), await connections.take()
        assert first is not None
        assert second is not None
        assert first is not second
        assert await connections.take() is None  # all busy: the route answers
        await connections.give(first, healthy=True)
        assert await connections.take() is first  # reused, no new connection
        await connections.give(second, healthy=False)  # failed: closed, a slot freed
        assert second.closed
        assert connections.open == 1
        third = await connections.take()
        assert third is not None
        assert not third.closed
        assert (await (await third.execute("SHOW hnsw.ef_search")).fetchone()) == (
            str(HNSW_EF_SEARCH),
        )
        # all busy, a caller that waits gets the next one given back
        waiting = asyncio.ensure_future(connections.take(wait=True))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await connections.give(first, healthy=True)
        assert await waiting is first
        await connections.give(first, healthy=True)
        await connections.give(third, healthy=True)
        await connections.close_idle()
        assert first.closed
        assert third.closed
        assert connections.open == 0

    asyncio.run(scenario())
