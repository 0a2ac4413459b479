"""Ingest and file content against a hostile caller: server paths by scope and ingest roots, a
file swapped or changed after ingest, server paths hidden from read keys, size caps without
memory growth, and ingests whose unique names collide."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.models import Collection, File, collection_files
from engine.db.session import session_scope
from engine.lake.collections import ensure_collection
from engine.lake.probe import Probe
from engine.lake.register import Probed, register
from engine.storage import file_uri, local_path
from sdk import Client
from tests.fixtures import imagegen

SECRET = b'{"url": "http://127.0.0.1:8470", "api_key": "mlk_the_admin_key"}'


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    return tmp_path / "allowed"


@pytest.fixture
def with_roots() -> bool:
    return True


@pytest.fixture
def max_file_bytes() -> int:
    return 16 << 30


@pytest.fixture
def broker() -> bool:
    return True


@pytest.fixture
def api_settings(
    settings: Settings, allowed: Path, with_roots: bool, max_file_bytes: int, broker: bool
) -> Settings:
    return settings.model_copy(
        update={
            "ingest_roots": str(allowed) if with_roots else "",
            "ingest_max_file_bytes": max_file_bytes,
            "ingest_max_listing": 3,
            "redis_url": settings.redis_url if broker else None,
        }
    )


def _ingest(
    api_url: str, key: str, collection: str, entries: list[tuple[Path | str, str]]
) -> httpx.Response:
    return httpx.post(
        f"{api_url}/api/v1/collections/ingest",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "collection_name": collection,
            "content_type": "image",
            "entries": [{"path": str(p), "relative_path": r} for p, r in entries],
        },
        timeout=120,
    )


def _get(url: str, key: str, **params: Any) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {key}"}, params=params, timeout=60)


# -- 1. server paths: admin, or a write key under METALAKE_INGEST_ROOTS ------------------------
def test_write_keys_register_server_paths_only_under_the_roots(
    api_url: str, make_key: Callable[..., str], allowed: Path, tmp_path: Path
) -> None:
    writer = make_key("write")
    inside = imagegen.image(allowed / "in" / "a.jpg")
    outside = imagegen.image(tmp_path / "outside" / "b.jpg")
    (allowed / "in" / "link.jpg").symlink_to(outside)

    for path in (
        outside,
        allowed / "in" / "link.jpg",
        allowed / "in" / ".." / ".." / "outside" / "b.jpg",
        tmp_path / "outside" / "no-such.jpg",
        Path(os.__file__),
    ):  # a file of the engine's own install
        refused = _ingest(api_url, writer, "w", [(path, "x.jpg")])
        assert refused.status_code == 403, (path, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "server_path_forbidden"
        assert "METALAKE_INGEST_ROOTS" in error["message"]
        assert "admin" in error["message"]
        assert "does not exist" not in error["message"]  # nothing told about the path

    ok = _ingest(api_url, writer, "w", [(inside, "a.jpg")])
    assert ok.status_code == 200, ok.text
    assert ok.json()["added"] == 1


@pytest.mark.parametrize("with_roots", [False])
def test_without_roots_only_admin_keys_register_server_paths(
    api_url: str, make_key: Callable[..., str], admin_key: str, tmp_path: Path
) -> None:
    picture = imagegen.image(tmp_path / "p" / "a.jpg")
    refused = _ingest(api_url, make_key("write"), "p", [(picture, "a.jpg")])
    assert refused.status_code == 403
    assert "this engine sets none" in refused.json()["error"]["message"]
    ok = _ingest(api_url, admin_key, "p", [(picture, "a.jpg")])
    assert ok.status_code == 200, ok.text
    assert ok.json()["added"] == 1


# -- 2. the content route serves only the bytes ingested ----------------------------------------
@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "client.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SECRET)
    return path


def _one(api_url: str, admin_key: str, folder: Path, name: str) -> dict[str, Any]:
    response = _ingest(api_url, admin_key, "c", [(folder / name, name)])
    assert response.json()["added"] == 1, response.text
    details = _get(f"{api_url}/api/v1/files/c_{name}", admin_key).json()
    assert isinstance(details, dict)
    return details


def test_a_file_swapped_for_a_symlink_is_never_served(
    api_url: str,
    admin_key: str,
    make_key: Callable[..., str],
    allowed: Path,
    secret: Path,
    tmp_path: Path,
) -> None:
    reader = make_key("read")
    picture = imagegen.image(allowed / "pics" / "a.png", seed=1)
    item = _one(api_url, admin_key, allowed / "pics", "a.png")
    assert _get(item["url"], reader).content == picture.read_bytes()

    picture.unlink()
    picture.symlink_to(secret)
    swapped = _get(item["url"], reader)
    assert swapped.status_code == 409
    assert swapped.json()["error"]["code"] == "file_changed_since_ingest"
    assert "symlink" in swapped.json()["error"]["message"]
    assert b"mlk_" not in swapped.content

    # A folder on the path swapped for a symlink to a folder holding a file of that name.
    picture.unlink()
    imagegen.image(picture, seed=1)
    assert _get(item["url"], reader).status_code == 200
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "a.png").symlink_to(secret)  # even a symlink inside is not followed
    (allowed / "pics").rename(tmp_path / "pics-moved")
    (allowed / "pics").symlink_to(decoy)
    moved = _get(item["url"], reader)
    assert moved.status_code == 409
    assert b"mlk_" not in moved.content


def test_a_file_changed_after_ingest_is_409_until_reingested(
    api_url: str, admin_key: str, make_key: Callable[..., str], allowed: Path, secret: Path
) -> None:
    reader = make_key("read")
    picture = imagegen.image(allowed / "pics" / "b.png", seed=2)
    item = _one(api_url, admin_key, allowed / "pics", "b.png")

    same_size = bytearray(picture.read_bytes())
    same_size[-20] ^= 0xFF
    picture.write_bytes(bytes(same_size))
    changed = _get(item["url"], reader)
    assert changed.status_code == 409
    error = changed.json()["error"]
    assert error["code"] == "file_changed_since_ingest"
    assert "SHA-256" in error["message"]
    assert "Re-ingest" in error["message"]

    # Another file renamed over it (what `mv` does): size differs, refused.
    os.replace(secret, picture)
    renamed = _get(item["url"], reader)
    assert renamed.status_code == 409
    assert "size" in renamed.json()["error"]["message"]
    assert b"mlk_" not in renamed.content
    assert str(len(SECRET)) not in renamed.json()["error"]["message"]

    imagegen.image(picture, seed=3)
    assert _ingest(api_url, admin_key, "c", [(picture, "b.png")]).json()["updated"] == 1
    again = _get(item["url"], reader)
    assert again.status_code == 200
    assert again.content == picture.read_bytes()
    assert again.headers["content-length"] == str(picture.stat().st_size)


def test_an_s3_object_changed_after_ingest_is_never_served_whole(
    api_url: str, admin_key: str, make_key: Callable[..., str], s3: Any, bucket: str, tmp_path: Path
) -> None:
    data = imagegen.image(tmp_path / "s3" / "a.png").read_bytes()
    s3.put_object(Bucket=bucket, Key="p/a.png", Body=data)
    ingested = httpx.post(
        f"{api_url}/api/v1/collections/ingest",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={"collection_name": "s", "content_type": "image", "s3_uri": f"s3://{bucket}/p"},
    )
    assert ingested.json()["added"] == 1, ingested.text
    url = _get(f"{api_url}/api/v1/files/s_a.png", admin_key).json()["url"]
    reader = make_key("read")
    assert _get(url, reader).content == data

    changed = bytes(reversed(data))  # the same size
    s3.put_object(Bucket=bucket, Key="p/a.png", Body=changed)
    try:
        got = _get(url, reader).content
    except httpx.RemoteProtocolError:  # the connection closed short of Content-Length
        got = b""
    assert len(got) < len(changed)


# -- 3. read keys see no server paths ---------------------------------------------------------
def test_read_keys_see_no_server_paths(
    api_url: str, admin_key: str, make_key: Callable[..., str], allowed: Path
) -> None:
    imagegen.image(allowed / "p" / "a.jpg")
    (allowed / "p" / "bad.jpg").write_text("not an image")
    response = _ingest(
        api_url,
        admin_key,
        "p",
        [(allowed / "p" / "a.jpg", "a.jpg"), (allowed / "p" / "bad.jpg", "bad.jpg")],
    )
    cid = response.json()["collection_id"]
    where = file_uri(allowed / "p" / "a.jpg")
    base = f"{api_url}/api/v1"

    read, write = make_key("read"), make_key("write")
    for key, shown in ((read, False), (write, True), (admin_key, True)):
        listed = _get(f"{base}/items", key).json()["items"][0]
        searched = httpx.post(
            f"{base}/items/search", json={}, headers={"Authorization": f"Bearer {key}"}
        ).json()["items"][0]
        details = _get(f"{base}/files/p_a.jpg", key).json()
        failures = _get(f"{base}/collections/{cid}/failures", key).json()["items"]
        for body in (listed, searched, details):
            assert body["storage_uri"] == (where if shown else None)
        assert failures[0]["path"] == (str(allowed / "p" / "bad.jpg") if shown else "bad.jpg")
        with Client(api_url, key) as sdk:
            assert sdk.get_file_details("p_a.jpg")["storage_uri"] == (where if shown else None)
            listed_sdk = sdk.get_item_list_from_collection(cid)
            assert listed_sdk[0]["storage_uri"] == (where if shown else None)
            page = str(sdk.get_item_list_from_datalake())
            assert (str(allowed) in page) == shown


# -- 4. caps: a file over METALAKE_INGEST_MAX_FILE_BYTES is refused unread; probing streams ----
def _rss() -> int:
    return int(psutil.Process().memory_info().rss)  # the API runs in this process


@pytest.mark.parametrize("max_file_bytes", [1 << 20])
def test_a_big_sparse_file_over_the_cap_is_refused_unread(
    api_url: str, admin_key: str, allowed: Path
) -> None:
    imagegen.image(allowed / "big" / "small.png")
    big = allowed / "big" / "big.png"
    with big.open("wb") as handle:
        handle.truncate(3 << 30)  # 3 GB, sparse
    before = _rss()
    started = time.monotonic()
    response = _ingest(
        api_url, admin_key, "big", [(big, "big.png"), (allowed / "big" / "small.png", "small.png")]
    )
    elapsed = time.monotonic() - started
    grew = _rss() - before
    report = response.json()
    assert report["added"] == 1
    (failure,) = report["failed"]
    assert "METALAKE_INGEST_MAX_FILE_BYTES=1048576" in failure["reason"]
    assert str(3 << 30) in failure["reason"]
    assert grew < 32 << 20, f"RSS grew by {grew / 2**20:.0f} MiB"
    assert elapsed < 10


def test_a_big_file_under_the_cap_is_hashed_streaming(
    api_url: str, admin_key: str, allowed: Path
) -> None:
    big = allowed / "big" / "big.png"
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:
        handle.truncate(768 << 20)  # sparse zeros: read and hashed in full, then not an image
    before = _rss()
    response = _ingest(api_url, admin_key, "big", [(big, "big.png")])
    grew = _rss() - before
    (failure,) = response.json()["failed"]
    assert "not a readable image" in failure["reason"]
    assert grew < 64 << 20, f"RSS grew by {grew / 2**20:.0f} MiB"


@pytest.mark.parametrize("broker", [False])  # with one, a background job (test_ingest_jobs)
def test_a_prefix_over_the_listing_limit_is_refused(
    api_url: str, admin_key: str, s3: Any, bucket: str
) -> None:
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"many/{i}.jpg", Body=b"x")
    refused = httpx.post(
        f"{api_url}/api/v1/collections/ingest",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={"collection_name": "s", "content_type": "image", "s3_uri": f"s3://{bucket}/many"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ingest_listing_too_large"
    assert "METALAKE_INGEST_MAX_LISTING" in refused.json()["error"]["message"]


# -- 5. colliding unique names: serialised, never repointed -----------------------------------
def _check_no_file_repointed(factory: sessionmaker[Session]) -> int:
    """Every file's bytes match its sha256, and each file is linked only to the collection
    whose folder holds it (folder name == collection name in these tests)."""
    with session_scope(factory) as s:
        rows = s.execute(
            select(File.unique_name, File.storage_uri, File.sha256, Collection.name)
            .join(collection_files, collection_files.c.file_id == File.id)
            .join(Collection, Collection.id == collection_files.c.collection_id)
        ).all()
    for name, uri, sha, collection in rows:
        path = local_path(uri)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, name
        assert path.parent.name == collection, (name, uri, collection)
    return len(rows)


def test_colliding_unique_names_in_concurrent_ingests_never_repoint(
    api_url: str, admin_key: str, allowed: Path, session_factory: sessionmaker[Session]
) -> None:
    pairs = 50
    for n in range(pairs):
        imagegen.image(allowed / f"race{n}" / "b_c.png", seed=2 * n)
        imagegen.image(allowed / f"race{n}_b" / "c.png", seed=2 * n + 1)

    def pair(n: int) -> list[dict[str, Any]]:
        start = threading.Barrier(2)

        def one(collection: str, relative: str) -> dict[str, Any]:
            start.wait()
            response = _ingest(
                api_url, admin_key, collection, [(allowed / collection / relative, relative)]
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        with ThreadPoolExecutor(2) as both:
            first = both.submit(one, f"race{n}", "b_c.png")
            second = both.submit(one, f"race{n}_b", "c.png")
            return [first.result(), second.result()]

    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(pair, range(pairs)))

    for n, (a, b) in enumerate(reports):
        assert a["added"] + b["added"] == 1, (n, a, b)
        (failure,) = a["failed"] + b["failed"]
        assert f"'race{n}_b_c.png'" in failure["reason"]
    assert _check_no_file_repointed(session_factory) == pairs


def test_a_name_taken_while_a_request_writes_is_a_failure_not_a_repoint(
    session_factory: sessionmaker[Session], allowed: Path
) -> None:
    """The conditional upsert itself: the second request looks before the first commits, then
    waits on the unique index; its update must match nothing."""
    first_file = imagegen.image(allowed / "race" / "b_c.png", seed=1)
    second_file = imagegen.image(allowed / "race_b" / "c.png", seed=2)

    def probed(path: Path, relative: str) -> Probed:
        data = path.read_bytes()
        return Probed(
            relative_path=relative,
            source=str(path),
            storage_uri=file_uri(path),
            probe=Probe(hashlib.sha256(data).hexdigest(), len(data), 64, 48),
        )

    reports = []
    with session_scope(session_factory) as first:
        collection = ensure_collection(session=first, name="race", content_type="image")
        reports.append(
            register(
                session=first,
                collection=collection,
                probed=[probed(first_file, "b_c.png")],
                failures=[],
                metadata={},
            )
        )

        def second() -> None:
            with session_scope(session_factory) as s:
                other = ensure_collection(session=s, name="race_b", content_type="image")
                reports.append(
                    register(
                        session=s,
                        collection=other,
                        probed=[probed(second_file, "c.png")],
                        failures=[],
                        metadata={},
                    )
                )

        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(1.0)  # the second is blocked on the unique index by now
        assert waiting.is_alive()
    waiting.join(30)
    assert [r.added for r in reports] == [1, 0]
    assert "'race_b_c.png'" in reports[1].failed[0].reason
    assert _check_no_file_repointed(session_factory) == 1
