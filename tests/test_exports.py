"""Exports: selection, proposals, the zip streamed inline or built by a job, the SDK and CLI;
and `download_annotations` leaving proposals out."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import event, insert
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.models import Annotation
from engine.db.session import session_scope
from sdk import BadRequest, Client, MetaLakeError
from tests.conftest import serve_app
from tests.fixtures.worker import (  # noqa: F401
    running_worker,
    settings,
    shared_envs_dir,
    worker,
)
from tests.test_annotations_factories import LakeImage, make_collection


def _box(
    file_id: int, label: str, *, status: str = "applied", source: str = "human"
) -> dict[str, object]:
    return {
        "file_id": file_id,
        "label": label,
        "shape": "box",
        "geometry": {"x1": 1, "y1": 2, "x2": 30, "y2": 40},
        "source": source,
        "status": status,
    }


def test_download_annotations_leaves_proposals_out_unless_asked(
    client: Client, session: Session, tmp_path: Path
) -> None:
    collection_id, images = make_collection(
        session, tmp_path / "birds", "birds", {"a.jpg": (64, 48)}
    )
    image: LakeImage = images["a.jpg"]
    session.execute(
        insert(Annotation),
        [
            _box(image.file_id, "Bird"),
            _box(image.file_id, "Maybe", status="proposed", source="machine"),
        ],
    )
    session.commit()

    out = client.download_annotations(collection_id, output_dir=tmp_path / "d", include_files=False)
    [exported] = json.loads((out / "annotations.json").read_text())["images"]
    assert [(a["label"], a["status"]) for a in exported["annotations"]] == [("Bird", "applied")]

    # uploaded back, the download writes only what was applied
    report = client.upload_annotations_for_folder(
        "birds", "copy", out / "annotations.json", "mixed"
    )
    assert report["written"] == 1

    out = client.download_annotations(
        collection_id, output_dir=tmp_path / "p", include_files=False, include_proposals=True
    )
    [exported] = json.loads((out / "annotations.json").read_text())["images"]
    assert sorted((a["label"], a["status"]) for a in exported["annotations"]) == [
        ("Bird", "applied"),
        ("Bird", "applied"),
        ("Maybe", "proposed"),
    ]


# -- exports -------------------------------------------------------------------------------------
@pytest.fixture
def lake(session: Session, tmp_path: Path) -> tuple[int, dict[str, LakeImage]]:
    """birds: a.jpg (a Bird, a proposed Maybe), b.jpg (a machine Cat), c.jpg (nothing)."""
    collection_id, images = make_collection(
        session,
        tmp_path / "birds",
        "birds",
        {"a.jpg": (64, 48), "b.jpg": (32, 32), "c.jpg": (40, 30)},
    )
    session.execute(
        insert(Annotation),
        [
            _box(images["a.jpg"].file_id, "Bird"),
            _box(images["a.jpg"].file_id, "Maybe", status="proposed", source="machine"),
            _box(images["b.jpg"].file_id, "Cat", source="machine"),
        ],
    )
    session.commit()
    return collection_id, images


def _document(out: Path) -> dict[str, list[str]]:
    """image -> [label/status ...] of a metalake_json export."""
    document = json.loads((out / "annotations.json").read_text())
    return {
        i["image"]: [f"{a['label']}/{a['status']}" for a in i["annotations"]]
        for i in document["images"]
    }


def test_export_by_query_selects_exactly_those_files(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    report = client.export_collection(
        collection_id,
        "metalake_json",
        tmp_path / "out",
        query="annotation.label = Bird OR name = birds_c.jpg",
        progress=False,
    )
    out = tmp_path / "out"
    assert _document(out) == {"a.jpg": ["Bird/applied"], "c.jpg": []}
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.jpg", "c.jpg"]
    assert (out / "images" / "a.jpg").read_bytes() == images["a.jpg"].path.read_bytes()
    assert (report["items"], report["annotations"], report["files"], report["job_id"]) == (
        2,
        1,
        3,
        None,
    )


def test_proposals_and_sources(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, _ = lake
    client.export_collection(
        collection_id, "metalake_json", tmp_path / "h", sources=["human"], include_media=False
    )
    assert _document(tmp_path / "h") == {"a.jpg": ["Bird/applied"], "b.jpg": [], "c.jpg": []}
    assert not (tmp_path / "h" / "images").exists()
    client.export_collection(
        collection_id, "metalake_json", tmp_path / "p", include_proposals=True, include_media=False
    )
    assert _document(tmp_path / "p") == {
        "a.jpg": ["Bird/applied", "Maybe/proposed"],
        "b.jpg": ["Cat/applied"],
        "c.jpg": [],
    }


def test_coco_labels_come_from_the_selection(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, _ = lake
    client.export_collection(collection_id, "coco", tmp_path / "c", include_media=False)
    [document] = [
        json.loads(p.read_text())
        for p in (tmp_path / "c").rglob("*.json")
        if p.name != ".metalake-export.json"
    ]
    assert [c["name"] for c in document["categories"]] == ["Bird", "Cat"]
    assert len(document["images"]) == 3
    assert len(document["annotations"]) == 2


def test_inline_zip_streams_with_counts(
    api_url: str, admin_key: str, lake: tuple[int, dict[str, LakeImage]]
) -> None:
    collection_id, _ = lake
    with httpx.Client(base_url=api_url + "/api/v1", headers=_auth(admin_key)) as http:
        response = http.post(
            "/exports", json={"collection_id": collection_id, "format": "metalake_json"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["x-export-items"] == "3"
    assert "content-length" not in response.headers  # streamed, not buffered
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert sorted(names) == ["annotations.json", "images/a.jpg", "images/b.jpg", "images/c.jpg"]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"format": "nope"}, 400, "unknown_export_format"),
        ({"format": "coco", "query": "annotation.label = "}, 400, "invalid_query"),
        ({"format": "coco", "collection_id": 999}, 404, "collection_not_found"),
        ({"format": "coco", "filter": {"colour": 1}}, 400, "invalid_filter"),
        ({"format": "coco", "content_type": "image"}, 422, None),
    ],
)
def test_bad_input_is_a_clear_4xx(
    api_url: str,
    admin_key: str,
    lake: tuple[int, dict[str, LakeImage]],
    body: dict[str, object],
    status: int,
    code: str | None,
) -> None:
    request = {"collection_id": lake[0], **body}
    with httpx.Client(base_url=api_url + "/api/v1", headers=_auth(admin_key)) as http:
        response = http.post("/exports", json=request)
    assert response.status_code == status, response.text
    if code is not None:
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"]
    if code == "invalid_query":
        assert "position" in response.json()["error"]["details"]


def test_sdk_refuses_a_foreign_destination_and_replaces_its_own(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, _ = lake
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(BadRequest, match="not empty"):
        client.export_collection(collection_id, "metalake_json", foreign)
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]

    out = tmp_path / "out"
    client.export_collection(collection_id, "metalake_json", out, progress=False)
    client.export_collection(
        collection_id, "metalake_json", out, query="name = birds_a.jpg", include_media=False
    )
    assert _document(out) == {"a.jpg": ["Bird/applied"]}
    assert not (out / "images").exists()  # the earlier export was replaced, not merged


# -- the job path ----------------------------------------------------------------------------------
def test_a_large_export_runs_as_a_job_with_progress(
    settings: Settings,
    worker: object,
    admin_key: str,
    lake: tuple[int, dict[str, LakeImage]],
    session: Session,
    tmp_path: Path,
) -> None:
    from engine.api.app import create_app

    collection_id, images = lake
    app = create_app(settings.model_copy(update={"export_inline_max_items": 1}))
    for url in serve_app(app):
        with Client(url, admin_key) as client:
            report = client.export_collection(
                collection_id, "metalake_json", tmp_path / "out", progress=False
            )
            job = client.get_job(report["job_id"])
            with httpx.Client(base_url=url + "/api/v1", headers=_auth(admin_key)) as http:
                download = http.get(f"/exports/{report['job_id']}/download")
                missing = http.get("/exports/999/download")
        app.state.db_engine.dispose()
    assert (job["kind"], job["status"], job["total"], job["done"]) == ("export", "succeeded", 3, 3)
    assert job["params"]["format"] == "metalake_json"
    assert (report["items"], report["annotations"]) == (3, 2)
    assert _document(tmp_path / "out") == {
        "a.jpg": ["Bird/applied"],
        "b.jpg": ["Cat/applied"],
        "c.jpg": [],
    }
    assert (tmp_path / "out" / "images" / "b.jpg").read_bytes() == images["b.jpg"].path.read_bytes()
    assert download.status_code == 200
    assert download.headers["x-export-items"] == "3"
    assert len(zipfile.ZipFile(io.BytesIO(download.content)).namelist()) == 4
    assert missing.status_code == 404


def test_cli_export_by_collection_name(
    api_url: str, admin_key: str, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    env = {"METALAKE_URL": api_url, "METALAKE_API_KEY": admin_key}
    result = CliRunner().invoke(
        app,
        ["export", "--collection", "birds", "--format", "metalake_json", "--out",
         str(tmp_path / "cli"), "--query", "name = birds_b.jpg", "--no-media"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 1
    assert _document(tmp_path / "cli") == {"b.jpg": ["Cat/applied"]}
    missing = CliRunner().invoke(
        app, ["export", "--collection", "nope", "--format", "coco", "--out", str(tmp_path / "x")],
        env=env,
    )  # fmt: skip
    assert missing.exit_code == 1
    assert "No collection is named 'nope'" in missing.stderr


def test_a_file_changed_since_ingest_writes_nothing(
    client: Client, lake: tuple[int, dict[str, LakeImage]], tmp_path: Path
) -> None:
    collection_id, images = lake
    images["b.jpg"].path.write_bytes(b"not the ingested bytes")
    with pytest.raises(MetaLakeError, match="stopped before its end"):
        client.export_collection(collection_id, "metalake_json", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".metalake-export")] == []


# -- the service -----------------------------------------------------------------------------------
def test_pages_report_progress_and_cost_three_queries_each(
    session_factory: sessionmaker[Session],
    lake: tuple[int, dict[str, LakeImage]],
    settings: Settings,
    tmp_path: Path,
) -> None:
    from engine.interop.exports import prepare_export, write_export
    from engine.interop.formats import writer_for
    from engine.interop.sinks import FolderSink
    from engine.storage import Storage
    from sdk.schemas_exports import ExportRequest

    collection_id, _ = lake
    request = ExportRequest(collection_id=collection_id, format="metalake_json")
    storage = Storage.from_settings(settings)

    def run(page_size: int, out: Path) -> tuple[list[tuple[int, int]], int]:
        calls: list[tuple[int, int]] = []
        statements: list[str] = []
        with session_scope(session_factory) as s:
            prepared = prepare_export(session=s, request=request, writer_for=writer_for)

            def count(*args: object) -> None:
                statements.append(str(args[2]))

            event.listen(s.get_bind(), "before_cursor_execute", count)
            try:
                written = write_export(
                    prepared,
                    session=s,
                    storage=storage,
                    sink=FolderSink(out),
                    writer_for=writer_for,
                    progress=lambda done, total: calls.append((done, total)),
                    page_size=page_size,
                )
            finally:
                event.remove(s.get_bind(), "before_cursor_execute", count)
        assert written == 3
        return calls, len(statements)

    calls, one_page = run(3, tmp_path / "a")
    assert calls == [(3, 3), (3, 3)]
    calls, three_pages = run(1, tmp_path / "b")
    assert calls == [(1, 3), (2, 3), (3, 3), (3, 3)]
    # files, annotations, tags per page, and the empty page that ends it
    assert (one_page, three_pages) == (3 + 1, 3 * 3 + 1)
    assert sorted(p.name for p in (tmp_path / "b" / "images").iterdir()) == [
        "a.jpg",
        "b.jpg",
        "c.jpg",
    ]


def test_a_cancelled_export_publishes_nothing_and_a_resumed_one_runs_once(
    settings: Settings,
    admin_key: str,
    lake: tuple[int, dict[str, LakeImage]],
    session: Session,
    tmp_path: Path,
) -> None:
    from engine.api.app import create_app
    from engine.db.datasets import ExportResult

    collection_id, _ = lake
    app = create_app(settings.model_copy(update={"export_inline_max_items": 0}))
    body = {"collection_id": collection_id, "format": "coco", "include_media": False}
    for url in serve_app(app):
        with Client(url, admin_key) as client:
            with httpx.Client(base_url=url + "/api/v1", headers=_auth(admin_key)) as http:
                cancelled = http.post("/exports", json=body).json()["job_id"]
                resumed = http.post("/exports", json=body).json()["job_id"]
                not_ready = http.get(f"/exports/{resumed}/download")
            assert settings.redis_url
            Redis.from_url(settings.redis_url).delete("control")  # the broker lost them
            client.cancel_job(cancelled)
            client.resume_job(resumed)  # still queued: sent to a worker again
            client.resume_job(resumed)  # twice: the second delivery finds it taken
            with running_worker(settings, tmp_path / "worker.log"):
                done = client.wait_for_job(resumed, timeout=120, progress=False)
                time.sleep(1)
            jobs = {j: client.get_job(j) for j in (cancelled, resumed)}
        app.state.db_engine.dispose()
    assert not_ready.status_code == 409
    assert not_ready.json()["error"]["code"] == "export_not_ready"
    assert (done["status"], done["done"]) == ("succeeded", 3)
    assert jobs[cancelled]["status"] == "cancelled"
    session.expire_all()
    assert [r.job_id for r in session.query(ExportResult).all()] == [resumed]
