"""Label Studio for real (tests/fixtures/labelstudio.py) against the real API, a real worker
and the suite's trained shapes detector: Label Studio connected to /ml with Basic auth asks for
predictions of tasks at signed lake URLs; projects made from a collection; human annotations
made in Label Studio come back by webhook and by download."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from engine.cli import app
from engine.config import Settings
from engine.db.models import Annotation, File
from engine.interop.signing import signed_url
from tests.fixtures.labelstudio import LabelStudio, label_studio  # noqa: F401
from tests.fixtures.payloads import iou
from tests.fixtures.plugin import shapes_detector, shapes_detector_bundle  # noqa: F401
from tests.fixtures.shapes import CLASSES, scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SIZE = 160
CONFIG = (
    '<View><Image name="picture" value="$img"/>'
    '<RectangleLabels name="shape" toName="picture">'
    + "".join(f'<Label value="{label}"/>' for label in CLASSES)
    + "</RectangleLabels></View>"
)
# Creates the annotations given as JSON in argv[1]; prints their ids.
DRAW = """
import json, os, sys
from label_studio_sdk import LabelStudio
env = os.environ
ls = LabelStudio(base_url=env["LABEL_STUDIO_URL"], api_key=env["LABEL_STUDIO_API_KEY"])
made = [ls.annotations.create(id=a["task"], result=a["result"]).id for a in json.loads(sys.argv[1])]
print(json.dumps(made))
"""
MARKER = {"x1": 10.0, "y1": 20.0, "x2": 50.0, "y2": 60.0}  # a stored box no model would give


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The shapes detector was trained on 160 x 160 images: /ml/predict runs it at that size."""
    return settings.model_copy(update={"labelstudio_input_resolution": SIZE})


@pytest.fixture
def lake(client: Any, tmp_path: Path) -> dict[str, Any]:
    """`lsauto` (4 scenes) and `lsfresh` (3 scenes); truth boxes by unique name."""
    truth: dict[str, list[tuple[str, list[float]]]] = {}
    files: dict[str, Path] = {}
    ids = {}
    for collection, indexes in (("lsauto", range(4)), ("lsfresh", range(4, 7))):
        folder = tmp_path / collection
        folder.mkdir()
        for index in indexes:
            s = scene(index, seed=5)
            s.image.save(folder / f"s{index}.png")
            files[f"{collection}_s{index}.png"] = folder / f"s{index}.png"
            truth[f"{collection}_s{index}.png"] = [(sh.label, list(sh.box)) for sh in s.shapes]
        ids[collection] = client.upload_files_to_collection(folder, "image", collection)
    return {"ids": ids, "truth": truth, "files": files}


@pytest.fixture
def autotagged(
    client: Any, worker: Any, lake: dict[str, Any], shapes_detector_bundle: Path
) -> dict[str, Any]:
    """`lsauto` auto-tagged by the trained detector: machine boxes in the lake."""
    client.register_model(shapes_detector_bundle, "shapes_yolo", "autotagging")
    job = client.auto_tag_collection(
        lake["ids"]["lsauto"], "shapes_yolo", (SIZE, SIZE), 0.5, None, None, "local"
    )
    final = client.wait_for_job(job["job_id"], timeout=300, progress=False)
    assert final["status"] == "succeeded", final
    return lake


def _machine(session: Session, prefix: str) -> dict[str, list[Annotation]]:
    session.expire_all()
    rows = session.execute(
        select(File.unique_name, Annotation)
        .join(File, File.id == Annotation.file_id)
        .where(Annotation.source == "machine", File.unique_name.startswith(prefix))
    )
    out: dict[str, list[Annotation]] = {}
    for name, ann in rows:
        out.setdefault(name, []).append(ann)
    return out


def _human(session: Session) -> dict[str, list[Annotation]]:
    session.expire_all()
    rows = session.execute(
        select(File.unique_name, Annotation)
        .join(File, File.id == Annotation.file_id)
        .where(Annotation.source == "human")
    )
    out: dict[str, list[Annotation]] = {}
    for name, ann in rows:
        out.setdefault(name, []).append(ann)
    return out


def _box(result: dict[str, Any]) -> list[float]:
    v = result["value"]
    w, h = result["original_width"], result["original_height"]
    x, y = v["x"] * w / 100, v["y"] * h / 100
    return [x, y, x + v["width"] * w / 100, y + v["height"] * h / 100]


def _corners(ann: Annotation) -> list[float]:
    g = ann.geometry
    return [g["x1"], g["y1"], g["x2"], g["y2"]]


def _percent(label: str, box: list[float]) -> dict[str, Any]:
    x1, y1, x2, y2 = box
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": SIZE,
        "original_height": SIZE,
        "value": {
            "x": 100 * x1 / SIZE,
            "y": 100 * y1 / SIZE,
            "width": 100 * (x2 - x1) / SIZE,
            "height": 100 * (y2 - y1) / SIZE,
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


def _export(api: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    response = api.get(
        f"/api/projects/{project_id}/export",
        params={"exportType": "JSON", "download_all_tasks": "true"},
    )
    response.raise_for_status()
    tasks: list[dict[str, Any]] = response.json()
    # the export names predictions by id: read them whole
    predictions = api.get("/api/predictions/", params={"project": project_id})
    predictions.raise_for_status()
    for task in tasks:
        task["predictions"] = [p for p in predictions.json() if p["task"] == task["id"]]
    return tasks


def _name_of(url: str) -> str:
    return url.split("/api/v1/signed/files/", 1)[1].split("?", 1)[0]


def test_ml_backend_answers_from_the_lake_and_from_the_model(
    autotagged: dict[str, Any],
    label_studio: LabelStudio,
    api_url: str,
    settings: Settings,
    make_key: Any,
    session: Session,
) -> None:
    truth = autotagged["truth"]
    # One stored machine box moved where no model puts it: the answer must come from the lake.
    stored = _machine(session, "lsauto_")
    assert set(stored) == {n for n in truth if n.startswith("lsauto_")}
    marked = stored["lsauto_s0.png"][0]
    session.execute(update(Annotation).where(Annotation.id == marked.id).values(geometry=MARKER))
    session.commit()
    stored = _machine(session, "lsauto_")

    key = make_key("read", name="label-studio")
    with label_studio.api() as ls:
        project = ls.post("/api/projects", json={"title": "ml backend", "label_config": CONFIG})
        assert project.status_code == 201, project.text
        pid = project.json()["id"]
        tasks = [{"img": signed_url(settings, name, base_url=api_url)} for name in sorted(truth)]
        assert ls.post(f"/api/projects/{pid}/import", json=tasks).status_code == 201
        backend = ls.post(
            "/api/ml",
            json={
                "url": f"{api_url}/ml/models/shapes_yolo",
                "project": pid,
                "title": "MetaLake",
                "auth_method": "BASIC_AUTH",
                "basic_auth_user": "metalake",
                "basic_auth_pass": key,
            },
        )
        assert backend.status_code == 201, backend.text
        started = time.monotonic()
        action = ls.post(
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": pid},
            json={"selectedItems": {"all": True, "excluded": []}},
            timeout=300,
        )
        assert action.status_code == 200, action.text
        print(f"Label Studio got 7 tasks' predictions in {time.monotonic() - started:.1f} s")
        exported = _export(ls, pid)

    assert len(exported) == 7
    matched = total = 0
    for task in exported:
        name = _name_of(task["data"]["img"])
        [prediction] = task["predictions"]
        assert prediction["model_version"] == "shapes_yolo@1"
        results = prediction["result"]
        assert all(r["from_name"] == "shape" and r["to_name"] == "picture" for r in results)
        assert all(r["type"] == "rectanglelabels" for r in results)
        boxes = [(r["value"]["rectanglelabels"][0], _box(r)) for r in results]
        if name.startswith("lsauto_"):  # from the lake, as stored (the marker included)
            expected = sorted((a.label, _corners(a)) for a in stored[name])
            assert len(boxes) == len(expected)
            for (label, box), (want_label, want) in zip(sorted(boxes), expected, strict=True):
                assert label == want_label
                assert box == pytest.approx(want, abs=1e-6)
        else:  # the model ran on the image, through a worker
            for label, box in boxes:
                total += 1
                matched += any(iou(box, t) >= 0.5 for lbl, t in truth[name] if lbl == label)
            assert boxes, name
    assert any(
        box == pytest.approx(list(MARKER.values()))
        for box in [_box(r) for t in exported for p in t["predictions"] for r in p["result"]]
    )
    assert total > 0
    assert matched >= 0.8 * total, (matched, total)


def test_project_from_collection_and_annotations_back(
    client: Any,
    autotagged: dict[str, Any],
    label_studio: LabelStudio,
    api_url: str,
    make_key: Any,
    session: Session,
) -> None:
    truth = {n: t for n, t in autotagged["truth"].items() if n.startswith("lsauto_")}
    stored = _machine(session, "lsauto_")
    made = client.create_annotation_project_from_collection(
        "from a collection",
        autotagged["ids"]["lsauto"],
        labelstudio_url=label_studio.url,
        labelstudio_token=label_studio.token,
    )
    pid = made["project_id"]
    assert made["isSuccess"] is True
    assert made["task_count"] == 4
    assert made["prediction_count"] == 4
    assert set(made["labels"]) == {a.label for anns in stored.values() for a in anns}
    assert made["project_url"] == f"{label_studio.url}/projects/{pid}"

    write_key = make_key("write", name="label-studio-webhook")
    with label_studio.api() as ls:
        config = ls.get(f"/api/projects/{pid}").json()["label_config"]
        assert all(f'value="{label}"' in config for label in made["labels"])
        hook = ls.post(
            "/api/webhooks/",
            json={
                "project": pid,
                "url": f"{api_url}/ml/webhook",
                "send_payload": True,
                "send_for_all_actions": False,
                "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"],
                "headers": {"Authorization": f"Bearer {write_key}"},
            },
        )
        assert hook.status_code == 201, hook.text
        tasks = _export(ls, pid)
        assert len(tasks) == 4
        for task in tasks:
            name = task["data"]["metalake_unique_name"]
            image = httpx.get(task["data"]["image"], timeout=30)  # a signed URL, no key
            assert image.status_code == 200
            assert image.content == autotagged["files"][name].read_bytes()
            [prediction] = task["predictions"]
            assert prediction["model_version"] == "shapes_yolo@1"
            got = sorted((r["value"]["rectanglelabels"][0], _box(r)) for r in prediction["result"])
            want = sorted((a.label, _corners(a)) for a in stored[name])
            assert [g[0] for g in got] == [w[0] for w in want]
            for (_, box), (_, expected) in zip(got, want, strict=True):
                assert box == pytest.approx(expected, abs=1e-6)

    # Annotators draw the truth (through label-studio-sdk, in Label Studio's venv); the webhook
    # brings each annotation in as it is made.
    drawn = [
        {"task": t["id"], "result": [_percent(lbl, box) for lbl, box in truth[n]]}
        for t in tasks
        if (n := t["data"]["metalake_unique_name"])
    ]
    created = label_studio.run_sdk(DRAW, json.dumps(drawn))
    assert len(created) == 4

    deadline = time.monotonic() + 30
    while len(_human(session)) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    by_webhook = _human(session)
    assert set(by_webhook) == set(truth)
    assert all(a.operation_id == f"labelstudio:{pid}" for anns in by_webhook.values() for a in anns)

    first = client.download_project_annotations(
        pid, labelstudio_url=label_studio.url, labelstudio_token=label_studio.token
    )
    count = sum(len(t) for t in truth.values())
    assert first["operation_id"] == f"labelstudio:{pid}"
    assert first["written"] == count
    assert first["replaced"] == count  # what the webhook brought
    assert first["matched_images"] == 4
    human = _human(session)
    for name, shapes in truth.items():
        assert len(human[name]) == len(shapes)
        for ann in human[name]:
            assert ann.shape == "box"
            assert ann.status == "applied"
            best = max(iou(_corners(ann), box) for label, box in shapes if label == ann.label)
            assert best >= 0.9, (name, ann.geometry, shapes)

    again = client.download_project_annotations(
        pid, labelstudio_url=label_studio.url, labelstudio_token=label_studio.token
    )
    assert again["written"] == again["replaced"] == count
    assert sum(len(a) for a in _human(session).values()) == count

    # the shell, the token from Label Studio's own variable: the same set again
    env = {
        "METALAKE_URL": api_url,
        "METALAKE_API_KEY": make_key("write", name="shell"),
        "LABEL_STUDIO_API_KEY": label_studio.token,
    }
    args = ["labelstudio", "download", str(pid), "--labelstudio-url", label_studio.url]
    shell = CliRunner().invoke(app, args, env=env, prog_name="metalake")
    assert shell.exit_code == 0, (shell.stdout, shell.stderr)
    assert json.loads(shell.stdout)["replaced"] == count
    assert sum(len(a) for a in _human(session).values()) == count


def test_ml_routes_need_a_key_and_a_model(api_url: str, make_key: Any) -> None:
    key = make_key("read", name="reader")
    health = f"{api_url}/ml/health"
    assert httpx.get(health).status_code == 401
    assert httpx.get(health, auth=("metalake", "not-a-key")).status_code == 401
    assert httpx.get(health, headers={"Authorization": "Basic !!"}).status_code == 401
    answer = httpx.get(health, auth=("anyone", key))
    assert answer.status_code == 200
    assert answer.json()["status"] == "UP"
    assert httpx.get(health, headers={"Authorization": f"Bearer {key}"}).status_code == 200

    # no model named anywhere: a 400 that says how to name one
    setup = httpx.post(f"{api_url}/ml/setup", json={"schema": CONFIG}, auth=("u", key))
    assert setup.status_code == 400
    assert "/ml/models/<model name>" in setup.json()["error"]["message"]
    unknown = httpx.post(
        f"{api_url}/ml/models/nope/predict",
        json={"tasks": [{"id": 1, "data": {"img": "http://x/y.png"}}], "label_config": CONFIG},
        auth=("u", key),
    )
    assert unknown.status_code == 404
    bad_config = httpx.post(
        f"{api_url}/ml/models/nope/predict",
        json={"tasks": [], "label_config": "<View><Text name='t' value='$t'/></View>"},
        auth=("u", key),
    )
    assert bad_config.status_code == 400
    assert "<Image" in bad_config.json()["error"]["message"]
    # the webhook writes: a read key is refused
    hook = httpx.post(f"{api_url}/ml/webhook", json={"action": "PING"}, auth=("u", key))
    assert hook.status_code == 403


def test_projects_need_a_label_studio(
    client: Any, lake: dict[str, Any], api_url: str, admin_key: str
) -> None:
    from sdk.errors import BadRequest

    with pytest.raises(BadRequest) as refused:
        client.create_annotation_project_from_collection("no studio", lake["ids"]["lsauto"])
    assert "METALAKE_LABELSTUDIO_URL" in str(refused.value)
    shell = CliRunner().invoke(
        app,
        ["labelstudio", "project", "no studio", "--collection-id", str(lake["ids"]["lsauto"])],
        env={"METALAKE_URL": api_url, "METALAKE_API_KEY": admin_key},
        prog_name="metalake",
    )
    assert shell.exit_code == 1
    assert "METALAKE_LABELSTUDIO_URL" in shell.stderr
