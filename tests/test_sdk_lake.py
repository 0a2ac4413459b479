"""SDK lake calls: batched uploads and their report, generators over pages."""

from __future__ import annotations

from pathlib import Path

from sdk import Client
from tests.fixtures import imagegen


def test_upload_in_several_batches_reports_totals(client: Client, tmp_path: Path) -> None:
    imagegen.images(tmp_path / "many", [f"d{i % 3}/f{i:03d}.jpg" for i in range(450)])
    cid = client.upload_files_to_collection(tmp_path / "many", "image", "many")
    report = client.last_upload_report
    assert report is not None
    assert (report.collection_id, report.added, report.failed) == (cid, 450, [])
    assert client.get_collection_details(cid)["file_count"] == 450
    assert sum(1 for _ in client.iter_items(collection_id=cid, page_size=1000)) == 450


def test_iter_items_over_a_video_collection_ignores_item_type(
    client: Client, tmp_path: Path
) -> None:
    imagegen.video(tmp_path / "v" / "a.mp4", frames=3)
    imagegen.video(tmp_path / "v" / "b.mp4", frames=3)
    cid = client.upload_files_to_collection(tmp_path / "v", "video", "vids")
    names = [i["uniqueName"] for i in client.iter_items(collection_id=cid, page_size=1)]
    assert names == ["vids_a.mp4", "vids_b.mp4"]
    assert list(client.iter_items("image")) == []
