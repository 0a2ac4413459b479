"""Exports: selection, proposals, the zip streamed inline or built by a job, the SDK and CLI;
and `download_annotations` leaving proposals out."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.db.models import Annotation
from sdk import Client
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
    assert report.written == 1

    out = client.download_annotations(
        collection_id, output_dir=tmp_path / "p", include_files=False, include_proposals=True
    )
    [exported] = json.loads((out / "annotations.json").read_text())["images"]
    assert sorted((a["label"], a["status"]) for a in exported["annotations"]) == [
        ("Bird", "applied"),
        ("Bird", "applied"),
        ("Maybe", "proposed"),
    ]
