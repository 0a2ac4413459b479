"""Similarity search through the API, measured as the lake grows.

    python bench/similarity.py            # 100,000 vectors, measured at 1k, 10k and 100k
    python bench/similarity.py --quick    # 10,000 vectors, measured at 1k and 10k

Clustered synthetic 2048-d vectors, non-negative and normalised like pooled CNN features
(100 classes in 10 super-classes, each vector a class centre plus a 16-factor low-rank spread
plus noise, through a ReLU), go into an external embedding space with the SDK's
`insert_image_embeddings`, from 2 callers at once (`--insert-clients`; one per core). The
unique names it takes must be files of the lake, so tiny placeholder JPEGs are ingested first
(not timed with the vectors), uploaded per shard with metadata `{"shard": "s37",
"decile": "d3"}` (shard = i % 100). Each stage is a space of its own
(`bench_pooled_2048_<vectors>`, the first <vectors> vectors), filled from empty as an import
is: inserts do not touch the HNSW index, and the engine's worker builds it in bulk once the
space's writes go quiet (engine/embeddings/indexing.py; the rebuild as a space grows is tested
in tests/test_indexing.py rather than timed here: at m = 32 it inserted 90,000 vectors one by
one into the 10k graph in ~800 s). The bench shortens the quiet period to 2 s and the sweep
interval to 1 s (METALAKE_INDEX_QUIET_SECONDS, METALAKE_RECOVERY_INTERVAL) and waits for the
index to be
`ready` over all the stage's vectors before measuring (the build's own seconds are the
space's `index_build_seconds`). Inserts are reported as vectors/s per stage, the build apart.

At each stage (1k, 10k, then all vectors) 200 query vectors drawn from the same clusters (not
in the lake) are searched with `get_similar_items(vector=..., k=10)` through the API, three
ways: unfiltered, with `query="metadata.decile = d3"` (10% of the items) and with
`query="metadata.shard = s37"` (1%). Latency is the SDK call's wall time (JSON out, HTTP, the
engine, JSON back); recall@10 is against the exact top 10 computed with numpy on the same
float32 vectors (cosine) among the items the filter keeps. 20 warm-up queries per way first.
For comparison, the same unfiltered queries run by SQL on the engine's database (pgvector
alone: the index query at ef_search 100, the issue's reference setting, and at the engine's),
and 5 exact scans.

Prints a table, writes bench/results/similarity.json (bench/growth.py charts its per-stage
figures against the lake size) and bench/results/similarity.png.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Engine,
    describe,
    embedded_engine,
    load,
    machine,
    percentile,
    pyplot,
    save_chart,
    sql_scalar,
    table,
    write_placeholders,
    write_results,
)

from engine.db.session import libpq_url
from engine.embeddings.indexing import HNSW_EF_CONSTRUCTION, HNSW_M
from engine.embeddings.search import EF_SEARCH, index_settings

SPACE = "bench_pooled_2048"  # one space per stage: SPACE_<vectors>
COLLECTION = "sim"
SHARDS = 100
SUPER_CLASSES = 10
LATENT = 16
GOALS = {"recall_at_10": 0.99, "unfiltered_p95_ms": 10.0, "filtered_p95_ms": 40.0}
REFERENCE = (
    "pgvector 0.8 alone, by SQL, on this machine: halfvec(2048) HNSW m=16, "
    "ef_construction=64 builds over 100k vectors in 104 s; ef_search=100 recall@10 "
    "0.997 at p95 3.1 ms; 1%-filtered with iterative scans recall 1.0 at p95 24 ms; "
    "an exact scan 1.1 s"
)
MODES = {  # name: (share of the items kept, query for query number q)
    "unfiltered": (1.0, None),
    "filter_10pct": (0.1, "metadata.decile = d{decile}"),
    "filter_1pct": (0.01, "metadata.shard = s{shard:02d}"),
}
WARMUP = 20
REFERENCE_EF_SEARCH = 100  # the pgvector-alone reference


# -- data -------------------------------------------------------------------------------------
def clustered_vectors(count: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """`count` non-negative unit vectors like pooled CNN features: a shared base, the centre of
    one of `clusters` classes (grouped in SUPER_CLASSES super-classes, as breeds of dogs are
    closer to each other than to cars) and a low-rank within-class spread (LATENT factors)
    plus noise, through a ReLU, normalised. The classes are the same for every seed; `seed`
    draws the members."""
    model = np.random.default_rng(20_250_805)
    base = model.gamma(0.5, 1.0, dim).astype(np.float32)
    supers = model.gamma(0.5, 1.0, (SUPER_CLASSES, dim)).astype(np.float32)
    centres = supers[np.arange(clusters) % SUPER_CLASSES] + 0.5 * model.gamma(
        0.5, 1.0, (clusters, dim)
    ).astype(np.float32)
    factors = (model.normal(0, 1, (clusters, LATENT, dim)) / np.sqrt(LATENT)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, dim), np.float32)
    for start in range(0, count, 10_000):
        stop = min(start + 10_000, count)
        labels = rng.integers(0, clusters, stop - start)
        block = 0.5 * base + centres[labels]
        block += rng.normal(0, 0.25, block.shape).astype(np.float32)
        spread = rng.normal(0, 1, (stop - start, LATENT)).astype(np.float32)
        for cluster in np.unique(labels):
            rows = labels == cluster
            block[rows] += spread[rows] @ factors[cluster]
        np.maximum(block, 0, out=block)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out


def file_name(index: int) -> str:
    return f"v{index:06d}.jpg"


def unique_name(index: int) -> str:
    return f"{COLLECTION}_{file_name(index)}"


def metadata(shard: int) -> dict[str, str]:
    """A shard's metadata. Texts whose values differ between the keys: the files' GIN index
    (jsonb_ops) indexes keys and values apart, so `{"shard": 3}` would also fetch, then
    recheck and drop, every file of `{"decile": 3}`."""
    return {"shard": f"s{shard:02d}", "decile": f"d{shard // 10}"}


def query_text(mode: str, number: int) -> str | None:
    template = MODES[mode][1]
    shard = number % SHARDS
    return None if template is None else template.format(shard=shard, decile=shard // 10)


def kept(mode: str, number: int, count: int) -> np.ndarray:
    """Indexes (< count) of the items query `number` of `mode` keeps."""
    indexes = np.arange(count)
    if mode == "unfiltered":
        return indexes
    shard = number % SHARDS
    shards = indexes % SHARDS
    keep = shards // 10 == shard // 10 if mode == "filter_10pct" else shards == shard
    selected: np.ndarray = indexes[keep]
    return selected


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, mode: str, count: int, k: int
) -> list[set[int]]:
    """The exact top k (cosine: the vectors are unit length) of each query among the items
    its filter keeps."""
    truth = []
    for number, query in enumerate(queries):
        candidates = kept(mode, number, count)
        scores = vectors[candidates] @ query
        best = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        truth.append({int(candidates[i]) for i in best})
    return truth


# -- the engine -------------------------------------------------------------------------------
def ingest_placeholders(client: Any, folder: Path, start: int, stop: int) -> float:
    """Upload placeholder files start..stop-1, one call per shard (its metadata); seconds."""
    for shard in range(SHARDS):
        write_placeholders(
            folder / f"s{shard:02d}",
            [file_name(i) for i in range(start + (shard - start) % SHARDS, stop, SHARDS)],
        )
    started = time.perf_counter()
    for shard in range(SHARDS):
        if any((folder / f"s{shard:02d}").iterdir()):
            client.upload_files_to_collection(
                str(folder / f"s{shard:02d}"), "image", COLLECTION, metadata(shard)
            )
    return time.perf_counter() - started


def space_name(count: int) -> str:
    return f"{SPACE}_{count}"


def insert(clients: list[Any], vectors: np.ndarray, start: int, stop: int, space: str) -> float:
    """`insert_image_embeddings` of vectors start..stop-1, split into one contiguous slice per
    client, the clients calling at the same time (threads); seconds until all returned."""
    bounds = np.linspace(start, stop, len(clients) + 1).astype(int)
    slices = [
        [{"uniqueName": unique_name(i), "embeddings": vectors[i]} for i in range(lo, hi)]
        for lo, hi in itertools.pairwise(bounds.tolist())
    ]
    written: list[int] = []
    failures: list[BaseException] = []

    def call(client: Any, entries: list[dict[str, Any]]) -> None:
        try:
            written.append(
                int(client.insert_image_embeddings(entries, space, [vectors.shape[1]])["written"])
            )
        except BaseException as exc:  # reported below, in the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=call, args=(client, entries))
        for client, entries in zip(clients, slices, strict=True)
        if entries
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    if sum(written) != stop - start:
        raise SystemExit(f"insert wrote {sum(written)} of {stop - start} vectors")
    return elapsed


def wait_for_index(client: Any, space_name: str, count: int) -> tuple[float, float | None]:
    """Wait until the space's index is `ready` over `count` vectors: (seconds waited from
    the end of the inserts, the build's own seconds)."""
    started = time.perf_counter()
    while True:
        space = next((s for s in client.list_embedding_spaces() if s["name"] == space_name), None)
        if space and space["index"] == "ready" and space["indexed_vectors"] >= count:
            break
        if time.perf_counter() - started > 1800:
            raise SystemExit(f"the index was not built within 30 min: {space}")
        time.sleep(0.5)
    waited = time.perf_counter() - started
    return waited, space["index_build_seconds"]


def method_of(engine: Engine, space: str, query: np.ndarray, text: str | None, k: int) -> str:
    """How the engine found the neighbours (the API's `method`; the SDK returns items only)."""
    import httpx

    response = httpx.post(
        f"{engine.url}/api/v1/search/similar",
        timeout=60,
        headers={"Authorization": f"Bearer {engine.key}"},
        json={"vector": query.tolist(), "model_name": space, "k": k, "query": text},
    )
    response.raise_for_status()
    return str(response.json()["method"])


def settle(engine: Engine) -> None:
    """Write the new index and vectors out (CHECKPOINT) and let autovacuum finish, so that the
    searches are measured as a user meets them, not while PostgreSQL flushes the ~1 GB of
    pages just built and analyses the new rows."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(libpq_url(engine.database_url), autocommit=True) as connection:
        connection.execute("CHECKPOINT")
        while (
            connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ).fetchone()[0]
            and time.perf_counter() - started < 120
        ):
            time.sleep(1)
    print(
        f"  settled (checkpoint, autovacuum) in {time.perf_counter() - started:.1f} s", flush=True
    )


def pgvector_alone(
    engine: Engine,
    space_name: str,
    queries: np.ndarray,
    truth: list[set[int]],
    k: int,
    ef_search: int,
    exact_queries: int,
) -> dict[str, Any]:
    """The same unfiltered search by SQL on the engine's database, no API: the index query
    alone (file ids only) at `ef_search`, with the engine's other settings for the space, and a
    few exact scans, for comparison."""
    import psycopg

    with psycopg.connect(libpq_url(engine.database_url)) as connection:
        space, dim = connection.execute(
            "SELECT id, dim FROM embedding_spaces WHERE name = %s", (space_name,)
        ).fetchone() or (0, 0)
        names: dict[int, str] = dict(
            connection.execute(
                "SELECT e.file_id, f.unique_name FROM embeddings e "
                "JOIN files f ON f.id = e.file_id WHERE e.space_id = %s",
                (space,),
            ).fetchall()
        )
        connection.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        # and what the engine sets for a search of this space (a small one turns sorting off:
        # the planner would sort all its vectors instead)
        for name, value in index_settings("index", k, len(names)).items():
            if name != "hnsw.ef_search":
                connection.execute(f"SET {name} = {value}")
        # the engine's index expression and partial predicate (engine/embeddings/store.py)
        index_sql = (
            f"SELECT file_id FROM embeddings WHERE space_id = {int(space)} ORDER BY "
            f"vector::halfvec({int(dim)}) <=> %s::halfvec({int(dim)}) LIMIT {int(k)}"
        )
        exact_sql = (
            f"SELECT file_id FROM (SELECT file_id, vector <=> %s::vector({int(dim)}) "
            f"AS d FROM embeddings WHERE space_id = {int(space)} OFFSET 0) s "
            f"ORDER BY d LIMIT {int(k)}"
        )
        latencies, recalls, exact = [], [], []
        for number, query in enumerate(queries):
            text = "[" + ",".join(map(str, query.tolist())) + "]"
            started = time.perf_counter()
            rows = connection.execute(index_sql, (text,)).fetchall()
            latencies.append((time.perf_counter() - started) * 1000)
            found = {int(names[r[0]].rsplit("v", 1)[1].split(".")[0]) for r in rows}
            recalls.append(len(found & truth[number]) / len(truth[number]))
            if number < exact_queries:  # the exact scan the index avoids
                started = time.perf_counter()
                connection.execute(exact_sql, (text,)).fetchall()
                exact.append((time.perf_counter() - started) * 1000)
    return {
        "recall_at_10": float(np.mean(recalls)),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "exact_scan_ms": percentile(exact, 50) if exact else None,
        "ef_search": ef_search,
    }


class Background:
    """What else the database does while a way is measured: samples pg_stat_activity every
    0.2 s on its own connection for maintenance at work (autovacuum workers; VACUUM, ANALYZE,
    index builds, checkpoints), so that a figure taken meanwhile says so."""

    def __init__(self, engine: Engine) -> None:
        self.url = libpq_url(engine.database_url)
        self.samples = 0
        self.busy = 0
        self.seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self._stop.wait(0.2):
                rows = connection.execute(
                    "SELECT backend_type, left(query, 60) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND state = 'active' AND (backend_type "
                    "= 'autovacuum worker' OR query ~* '^\\s*(VACUUM|ANALYZE|CREATE INDEX|"
                    "REINDEX|CHECKPOINT)')"
                ).fetchall()
                self.samples += 1
                self.busy += bool(rows)
                for kind, query in rows:
                    label = f"{kind}: {query}"
                    self.seen[label] = self.seen.get(label, 0) + 1

    def figures(self) -> dict[str, Any]:
        return {
            "busy_share": self.busy / max(self.samples, 1),
            "samples": self.samples,
            "seen": dict(sorted(self.seen.items(), key=lambda kv: -kv[1])[:5]),
        }


def measure(
    engine: Engine,
    client: Any,
    space: str,
    queries: np.ndarray,
    truth: dict[str, list[set[int]]],
    count: int,
    k: int,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        for number in range(min(WARMUP, len(queries))):
            client.get_similar_items(
                vector=queries[-1 - number],
                model_name=space,
                k=k,
                query=query_text(mode, number + 7),
            )
        latencies, recalls, short = [], [], 0
        with Background(engine) as background:
            for number, query in enumerate(queries):
                text = query_text(mode, number)
                started = time.perf_counter()
                items = client.get_similar_items(vector=query, model_name=space, k=k, query=text)
                latencies.append((time.perf_counter() - started) * 1000)
                found = {int(item["unique_name"].rsplit("v", 1)[1].split(".")[0]) for item in items}
                expected = truth[mode][number]
                short += len(items) < min(k, len(kept(mode, number, count)))
                recalls.append(len(found & expected) / len(expected))
        out[mode] = {
            "queries": len(queries),
            "recall_at_10": float(np.mean(recalls)),
            "recall_min": float(np.min(recalls)),
            # queries whose true neighbours the graph did not reach (bench/README.md)
            "queries_finding_none": [n for n, r in enumerate(recalls) if r == 0],
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "mean_ms": float(np.mean(latencies)),
            "max_ms": max(latencies),
            "short_results": short,
            "method": method_of(engine, space, queries[0], query_text(mode, 0), k),
            "matching_items": int(count * MODES[mode][0]),
            "loadavg_1min": load(),
            "background": background.figures(),
        }
        if background.busy:
            print(
                f"    (meanwhile, in {background.busy} of {background.samples} samples: "
                f"{'; '.join(background.seen)})",
                flush=True,
            )
        print(
            f"    {mode:<13} recall@{k} {out[mode]['recall_at_10']:.4f}  p50 "
            f"{out[mode]['p50_ms']:.1f} ms  p95 {out[mode]['p95_ms']:.1f} ms  "
            f"({out[mode]['method']}, {short} short, load {load():.1f})",
            flush=True,
        )
    return out


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from sdk import Client

    stages = sorted({*args.stages, args.vectors})
    started = time.perf_counter()
    vectors = clustered_vectors(args.vectors, args.dim, args.clusters, seed=1)
    queries = clustered_vectors(args.queries, args.dim, args.clusters, seed=2)
    print(
        f"generated {args.vectors:,} + {args.queries} {args.dim}-d vectors in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    # every stage searched through its index, whatever its size (`--stages` below 1,000 too)
    quick_index = {
        "METALAKE_INDEX_QUIET_SECONDS": "2",
        "METALAKE_RECOVERY_INTERVAL": "1",
        "METALAKE_INDEX_MIN_VECTORS": "0",
    }
    with embedded_engine(work / "home", env=quick_index) as engine, ExitStack() as stack:
        client = stack.enter_context(closing(Client(engine.url, engine.key, timeout=600)))
        inserters = [
            stack.enter_context(closing(Client(engine.url, engine.key, timeout=600)))
            for _ in range(args.insert_clients)
        ]
        done = 0
        for stage, count in enumerate(stages):
            print(f"== {count:,} vectors", flush=True)
            ingest = ingest_placeholders(client, work / f"files{stage}", done, count)
            print(f"  ingested {count - done:,} placeholder files in {ingest:.1f} s", flush=True)
            space = space_name(count)
            seconds = insert(inserters, vectors, 0, count, space)
            rate = count / seconds
            print(
                f"  inserted {count:,} vectors into {space} in {seconds:.1f} s = {rate:,.0f} "
                f"vectors/s ({args.insert_clients} concurrent callers; load {load():.1f})",
                flush=True,
            )
            waited, build = wait_for_index(client, space, count)
            print(
                f"  HNSW index ready {waited:.1f} s after the inserts (the build itself: "
                f"{'?' if build is None else f'{build:.1f}'} s)",
                flush=True,
            )
            settle(engine)
            truth = {mode: exact_top(vectors, queries, mode, count, args.k) for mode in MODES}
            exact = time.perf_counter()
            exact_top(vectors, queries[:20], "unfiltered", count, args.k)
            numpy_ms = (time.perf_counter() - exact) / 20 * 1000
            modes = measure(engine, client, space, queries, truth, count, args.k)
            alone = [
                pgvector_alone(
                    engine,
                    space,
                    queries,
                    truth["unfiltered"],
                    args.k,
                    ef,
                    5 if ef == REFERENCE_EF_SEARCH else 0,
                )
                for ef in sorted({REFERENCE_EF_SEARCH, EF_SEARCH})
            ]
            for figures in alone:
                print(
                    f"    pgvector alone (SQL, ef_search {figures['ef_search']}): recall@"
                    f"{args.k} {figures['recall_at_10']:.4f}  p50 {figures['p50_ms']:.1f} ms "
                    f" p95 {figures['p95_ms']:.1f} ms",
                    flush=True,
                )
            results.append(
                {
                    "vectors": count,
                    "space": space,
                    "inserted": count,
                    "insert_seconds": seconds,
                    "insert_vectors_per_s": rate,
                    "index_ready_after_s": waited,
                    "index_build_seconds": build,
                    "ingest_placeholder_seconds": ingest,
                    "numpy_exact_ms_per_query": numpy_ms,
                    "index_mb": sql_scalar(
                        engine.database_url,
                        "SELECT pg_relation_size(('ix_embeddings_hnsw_' || id)"
                        f"::regclass) / 1e6 FROM embedding_spaces "
                        f"WHERE name = '{space}'",
                    ),
                    "table_mb": sql_scalar(
                        engine.database_url,  # every stage's space
                        "SELECT pg_total_relation_size('embeddings') / 1e6",
                    ),
                    "modes": modes,
                    "pgvector_alone": alone,
                    "loadavg_1min": load(),
                }
            )
            done = count
    return {"stages": results}


# -- report -----------------------------------------------------------------------------------
def met(stage: dict[str, Any]) -> dict[str, bool]:
    modes = stage["modes"]
    return {
        mode: (
            modes[mode]["recall_at_10"] >= GOALS["recall_at_10"]
            and modes[mode]["short_results"] == 0
            and modes[mode]["p95_ms"]
            <= (GOALS["unfiltered_p95_ms"] if mode == "unfiltered" else GOALS["filtered_p95_ms"])
        )
        for mode in MODES
    }


def report(results: dict[str, Any]) -> str:
    rows = []
    for stage in results["stages"]:
        for mode, figures in stage["modes"].items():
            rows.append(
                [
                    stage["vectors"],
                    mode,
                    figures["method"],
                    figures["recall_at_10"],
                    figures["p50_ms"],
                    figures["p95_ms"],
                    figures["short_results"],
                    "yes" if stage["goal_met"][mode] else "NO",
                ]
            )
        for alone in stage["pgvector_alone"]:
            rows.append(
                [
                    stage["vectors"],
                    "unfiltered",
                    f"pgvector alone, SQL, ef_search {alone['ef_search']}",
                    alone["recall_at_10"],
                    alone["p50_ms"],
                    alone["p95_ms"],
                    "",
                    "",
                ]
            )
    inserts = [
        [
            s["vectors"],
            s["inserted"],
            s["insert_seconds"],
            s["insert_vectors_per_s"],
            s["index_build_seconds"],
            s["index_ready_after_s"],
            s["index_mb"],
            s["table_mb"],
            s["pgvector_alone"][0]["exact_scan_ms"],
        ]
        for s in results["stages"]
    ]
    return (
        table(
            ["vectors", "search", "method", "recall@10", "p50 ms", "p95 ms", "short", "goal met"],
            rows,
        )
        + "\n\n"
        + table(
            [
                "vectors",
                "inserted",
                "insert s",
                "vectors/s",
                "HNSW build s",
                "ready after s",
                "HNSW MB",
                "table MB",
                "exact scan ms",
            ],
            inserts,
        )
    )


def chart(results: dict[str, Any]) -> None:
    plt = pyplot()
    if plt is None:
        return
    stages = results["stages"]
    sizes = [s["vectors"] for s in stages]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    for mode in MODES:
        p95 = [s["modes"][mode]["p95_ms"] for s in stages]
        p50 = [s["modes"][mode]["p50_ms"] for s in stages]
        (line,) = left.plot(sizes, p95, marker="o", label=f"{mode} p95")
        left.plot(
            sizes, p50, marker=".", linestyle=":", color=line.get_color(), label=f"{mode} p50"
        )
        middle.plot(
            sizes, [s["modes"][mode]["recall_at_10"] for s in stages], marker="o", label=mode
        )
    for index, ef in enumerate(sorted({a["ef_search"] for a in stages[0]["pgvector_alone"]})):
        alone = [next(a for a in s["pgvector_alone"] if a["ef_search"] == ef) for s in stages]
        style = ("--", ":")[index % 2]
        left.plot(
            sizes,
            [a["p95_ms"] for a in alone],
            color="black",
            linestyle=style,
            label=f"pgvector alone p95 (SQL, ef_search {ef})",
        )
        middle.plot(
            sizes,
            [a["recall_at_10"] for a in alone],
            color="black",
            linestyle=style,
            label=f"pgvector alone (SQL, ef_search {ef})",
        )
    left.axhline(GOALS["unfiltered_p95_ms"], color="grey", linestyle="--", linewidth=0.8)
    left.axhline(GOALS["filtered_p95_ms"], color="grey", linestyle="-.", linewidth=0.8)
    left.set(
        xscale="log",
        ylabel="ms per get_similar_items (SDK wall time)",
        xlabel="vectors in the space",
        title="latency (goals: 10 ms / 40 ms p95)",
    )
    left.legend(fontsize=7)
    middle.axhline(GOALS["recall_at_10"], color="grey", linestyle="--", linewidth=0.8)
    middle.set(
        xscale="log",
        ylabel="recall@10 vs exact",
        xlabel="vectors in the space",
        title="recall (goal 0.99)",
        ylim=(
            min(
                0.98,
                *(s["modes"][m]["recall_at_10"] for s in stages for m in MODES),
                *(a["recall_at_10"] for s in stages for a in s["pgvector_alone"]),
            )
            - 0.005,
            1.002,
        ),
    )
    middle.legend(fontsize=8)
    labels = [str(s) for s in sizes]
    right.bar(labels, [s["insert_seconds"] for s in stages], label="inserts")
    right.bar(
        labels,
        [s["index_build_seconds"] or 0 for s in stages],
        bottom=[s["insert_seconds"] for s in stages],
        label="HNSW bulk build",
    )
    right.set(
        ylabel="seconds",
        xlabel="stage (vectors in the space after it)",
        title="insert_image_embeddings, then the index build",
    )
    right.legend(fontsize=8)
    fig.suptitle(
        f"Similarity search through the API, {results['config']['dim']}-d, "
        f"k={results['config']['k']} ({results['machine']['cores']} cores)"
    )
    save_chart(fig, "similarity")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument(
        "--stages",
        default="1000,10000",
        help="sizes measured on the way to --vectors (comma-separated)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--insert-clients",
        type=int,
        default=2,
        help="concurrent insert_image_embeddings callers (one per core)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="10,000 vectors (stage 1,000) and 100 queries"
    )
    args = parser.parse_args()
    if args.quick:
        args.vectors, args.stages, args.queries = 10_000, "1000", 100
    args.stages = [int(s) for s in args.stages.split(",") if s.strip()]
    if any(s >= args.vectors or s < SHARDS for s in args.stages):
        parser.error(f"stages must lie between {SHARDS} and --vectors")
    print(f"machine: {describe(machine())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="metalake-bench-similarity-") as tmp:
        measured = run(args, Path(tmp))
    for stage in measured["stages"]:
        stage["goal_met"] = met(stage)
    results = {
        "config": {
            "vectors": args.vectors,
            "dim": args.dim,
            "clusters": args.clusters,
            "latent_factors": LATENT,
            "queries": args.queries,
            "k": args.k,
            "insert_clients": args.insert_clients,
            "space": SPACE,
            "super_classes": SUPER_CLASSES,
            "hnsw": {
                "m": HNSW_M,
                "ef_construction": HNSW_EF_CONSTRUCTION,
                "engine_ef_search": EF_SEARCH,
            },
            "filters": {m: MODES[m][1] for m in MODES},
        },
        "goals": GOALS,
        "reference": REFERENCE,
        **measured,
    }
    print("\n" + report(results))
    chart(write_results("similarity", results))
    return 0 if all(measured["stages"][-1]["goal_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
