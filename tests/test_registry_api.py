"""Registering bundles through the SDK and the real API, with bundles stored in the engine home,
a managed file:// directory or S3 (moto); every refusal leaves the registry as it was."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.models import Model, ModelVersion
from engine.db.session import session_scope
from engine.errors import Conflict as EngineConflict
from engine.registry.defaults import install_defaults
from engine.registry.store import registry_storage
from engine.storage import Storage, file_uri, local_path, split_s3
from sdk import BadRequest, Client, Conflict, Forbidden, NotFound
from tests.fixtures.bundle_factory import (
    INFERENCE,
    file_member,
    link_member,
    make_bundle,
    special_member,
    tar_folder,
    tar_members,
    valid_members,
)

MAX_BYTES = 2 << 20
MAX_FILES = 40


@pytest.fixture
def api_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    """`home` (default: bundles under the engine home), `managed` (a file:// managed storage
    directory) or `s3` (a moto bucket), with small bundle limits."""
    mode = getattr(request, "param", "home")
    update: dict[str, Any] = {"bundle_max_bytes": MAX_BYTES, "bundle_max_files": MAX_FILES}
    if mode == "managed":
        update["managed_storage_url"] = file_uri(tmp_path / "managed")
    elif mode == "s3":
        update["registry_url"] = f"s3://{request.getfixturevalue('bucket')}/registry"
    return settings.model_copy(update=update)


def stored_blobs(settings: Settings) -> list[str]:
    root = settings.registry_root_url
    if root.startswith("s3://"):
        bucket, prefix = split_s3(root)
        s3 = Storage.from_settings(settings).s3
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))
    folder = local_path(root) / "bundles"
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def registry_state(factory: sessionmaker[Session], settings: Settings) -> tuple[Any, ...]:
    with session_scope(factory) as session:
        models = session.scalar(select(func.count()).select_from(Model))
        versions = session.scalar(select(func.count()).select_from(ModelVersion))
    return models, versions, stored_blobs(settings)


def read_stored(settings: Settings, uri: str) -> dict[str, bytes]:
    data = Storage.from_settings(settings).read_bytes(uri)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@pytest.mark.parametrize("api_settings", ["home", "managed", "s3"], indirect=True)
def test_register_a_folder_then_a_tar_gz_as_versions(
    client: Client, api_settings: Settings, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    first = client.register_model(str(bundle), "shapes", "autotagging")
    assert (first["name"], first["version"], first["reference"]) == ("shapes", 1, "shapes@1")
    assert first["application"] == "autotagging"
    assert first["label_list"] == ["circle", "square", "triangle"]
    assert first["weights_file"] == "model.pt"
    assert {f["path"] for f in first["files"]} == {
        "code/inference.py",
        "code/requirements.txt",
        "label_list.yaml",
        "model.pt",
    }
    assert first["bundle_uri"].startswith(api_settings.registry_root_url + "/bundles/")
    assert first["bundle_uri"].endswith(first["sha256"] + ".tar.gz")
    assert read_stored(api_settings, first["bundle_uri"])["code/inference.py"] == INFERENCE.encode()

    # a user's own tar with the layout wrapped in one folder; stored unwrapped
    (bundle / "model.pt").write_bytes(b"better weights")
    archive = tar_folder(bundle, tmp_path / "v2.tar.gz", wrap="shapes_v2")
    second = client.register_model(archive, model_name="shapes", application="auto_tagging")
    assert (second["version"], second["application"]) == (2, "autotagging")
    assert read_stored(api_settings, second["bundle_uri"])["model.pt"] == b"better weights"
    assert len(stored_blobs(api_settings)) == 2

    again = client.register_model(bundle, "shapes", "autotagging")
    assert again["version"] == 3
    assert again["sha256"] != first["sha256"]


SEED_INFERENCE = INFERENCE.replace(
    'return {"dir": model_dir}', 'return os.path.join(model_dir, "yolov8l.pt")'
).replace("import json\n", "import json\nimport os\n")


def test_the_seed_layout_registers_as_written(client: Client, tmp_path: Path) -> None:
    """The SDK manual's folder: code/, label_list.yaml and yolov8l.pt at the top, no
    metalake.yaml; registered unchanged, as a folder and as the user's own tar of it."""
    bundle = make_bundle(tmp_path / "model_example_folder", weights="yolov8l.pt")
    (bundle / "code" / "inference.py").write_text(SEED_INFERENCE)
    assert not (bundle / "metalake.yaml").exists()
    model = client.register_model(str(bundle), "test_yolov8", "autotagging")
    assert (model["reference"], model["weights_file"]) == ("test_yolov8@1", "yolov8l.pt")
    assert model["label_list"] == ["circle", "square", "triangle"]
    assert {f["path"] for f in model["files"]} == {
        "code/inference.py",
        "code/requirements.txt",
        "label_list.yaml",
        "yolov8l.pt",
    }
    archive = tar_folder(bundle, tmp_path / "seed.tar.gz", wrap="model_example_folder")
    again = client.register_model(archive, "test_yolov8", "autotagging")
    assert (again["version"], again["weights_file"]) == (2, "yolov8l.pt")
    assert client.get_model("test_yolov8")["version"]["weights_file"] == "yolov8l.pt"


BadBundle = Callable[[Path], Path]


def _folder(**kwargs: Any) -> BadBundle:
    def build(tmp: Path) -> Path:
        return make_bundle(tmp / "bad", **kwargs)

    return build


def _members(*extra: tuple[tarfile.TarInfo, bytes | None]) -> BadBundle:
    def build(tmp: Path) -> Path:
        return tar_members(tmp / "bad.tar.gz", [*valid_members(), *extra])

    return build


def _raw(content: bytes) -> BadBundle:
    def build(tmp: Path) -> Path:
        (tmp / "bad.tar.gz").write_bytes(content)
        return tmp / "bad.tar.gz"

    return build


def _without(name: str) -> BadBundle:
    def build(tmp: Path) -> Path:
        return tar_members(tmp / "bad.tar.gz", [m for m in valid_members() if m[0].name != name])

    return build


def _plain_tar(tmp: Path) -> Path:
    with tarfile.open(tmp / "bad.tar.gz", "w") as tar:
        tar.add(make_bundle(tmp / "b"), arcname=".")
    return tmp / "bad.tar.gz"


REFUSALS: dict[str, tuple[BadBundle, str, str]] = {
    "absolute path": (_members(file_member("/tmp/x.py", b"x")), "/tmp/x.py", "absolute_path"),
    "parent reference": (
        _members(file_member("code/../../x", b"x")),
        "code/../../x",
        "parent_reference",
    ),
    "symlink out": (_members(link_member("w.pt", "/etc/passwd")), "w.pt", "link_escape"),
    "hard link out": (
        _members(link_member("w.pt", "../../etc/passwd", hard=True)),
        "w.pt",
        "link_escape",
    ),
    "device": (_members(special_member("sda", tarfile.BLKTYPE)), "sda", "special_file"),
    "fifo": (_members(special_member("pipe", tarfile.FIFOTYPE)), "pipe", "special_file"),
    "too many files": (
        _folder(extra={f"data/{i}.txt": "x" for i in range(MAX_FILES)}),
        "data/",
        "too_many_files",
    ),
    "empty archive": (_raw(b""), "(archive)", "archive_empty"),
    "not gzip": (_plain_tar, "(archive)", "archive_not_gzip"),
    "no inference.py": (_without("code/inference.py"), "code/inference.py", "inference_missing"),
    "empty inference.py": (_folder(inference=""), "code/inference.py", "inference_hooks"),
    "syntax error": (
        _folder(inference="def model_fn(:\n"),
        "code/inference.py",
        "inference_syntax",
    ),
    "missing hook": (
        _folder(inference=INFERENCE.replace("def predict_fn", "def predict")),
        "code/inference.py",
        "inference_hooks",
    ),
    "no requirements": (
        _folder(requirements=None),
        "code/requirements.txt",
        "requirements_missing",
    ),
    "pip option": (
        _folder(requirements="--extra-index-url https://x\n"),
        "code/requirements.txt",
        "requirements_option",
    ),
    "no labels": (_folder(labels=None), "label_list.yaml", "labels_missing"),
    "duplicate labels": (_folder(labels=["a", "b", "a"]), "label_list.yaml", "labels_invalid"),
    "no weights": (_folder(weights=None), "weights/", "weights_missing"),
    "empty weights": (_folder(weights_bytes=b""), "model.pt", "weights_empty"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_names_file_and_rule_and_changes_nothing(
    case: str,
    client: Client,
    api_settings: Settings,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    client.register_model(make_bundle(tmp_path / "good"), "shapes", "autotagging")
    before = registry_state(session_factory, api_settings)
    build, path, rule = REFUSALS[case]
    with pytest.raises(BadRequest) as caught:
        client.register_model(build(tmp_path), "shapes", "autotagging")
    error = caught.value
    assert error.status == 400
    assert error.code == "bundle_invalid"
    assert error.details["rule"] == rule
    assert error.details["path"].startswith(path)
    assert error.details["path"].strip("()") in error.message
    assert registry_state(session_factory, api_settings) == before


@pytest.mark.parametrize("api_settings", ["s3"], indirect=True)
def test_a_refusal_stores_nothing_in_s3_either(
    client: Client, api_settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    client.register_model(make_bundle(tmp_path / "good"), "shapes", "autotagging")
    before = registry_state(session_factory, api_settings)
    assert len(before[2]) == 1
    with pytest.raises(BadRequest):
        client.register_model(_members(link_member("x", "/etc"))(tmp_path), "shapes", "autotagging")
    assert registry_state(session_factory, api_settings) == before


def test_bundles_over_the_size_limit_are_a_413(
    client: Client, api_settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    before = registry_state(session_factory, api_settings)
    # unpacked too large (zeros: the archive itself is tiny)
    with pytest.raises(BadRequest) as caught:
        client.register_model(
            make_bundle(tmp_path / "zeros", weights_bytes=bytes(MAX_BYTES)), "big", "autotagging"
        )
    assert (caught.value.status, caught.value.details["rule"]) == (413, "too_large")
    assert "METALAKE_BUNDLE_MAX_BYTES" in caught.value.message
    # the upload itself too large: refused from its Content-Length
    archive = tmp_path / "huge.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + bytes(2 * MAX_BYTES))
    with pytest.raises(BadRequest) as caught:
        client.register_model(archive, "big", "autotagging")
    assert (caught.value.status, caught.value.code) == (413, "bundle_too_large")
    assert registry_state(session_factory, api_settings) == before


def test_an_upload_streamed_past_the_limit_without_a_length_is_a_413(
    api_url: str, admin_key: str, api_settings: Settings
) -> None:
    def body() -> Any:
        for _ in range(4 * MAX_BYTES // (1 << 20)):
            yield bytes(1 << 20)

    response = httpx.post(
        f"{api_url}/api/v1/models/big/versions",
        params={"application": "embedding"},
        content=body(),
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["error"]["details"]["rule"] == "too_large"


def test_versions_and_name_at_n(client: Client, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    client.register_model(bundle, "shapes", "autotagging")
    (bundle / "label_list.yaml").write_text("- circle\n- square\n")
    client.register_model(bundle, "shapes", "autotagging")
    latest = client.get_model("shapes")
    assert (latest["latest_version"], latest["version"]["version"]) == (2, 2)
    assert latest["version"]["label_list"] == ["circle", "square"]
    assert [v["version"] for v in latest["versions"]] == [1, 2]
    first = client.get_model("shapes@1")
    assert first["version"]["label_list"] == ["circle", "square", "triangle"]
    with pytest.raises(NotFound) as caught:
        client.get_model("shapes@7")
    assert "versions: 1, 2" in caught.value.message
    with pytest.raises(BadRequest):
        client.get_model("shapes@latest")


def test_a_name_keeps_its_application(client: Client, tmp_path: Path) -> None:
    client.register_model(make_bundle(tmp_path / "b"), "shapes", "autotagging")
    with pytest.raises(Conflict) as caught:
        client.register_model(make_bundle(tmp_path / "e", "embedding"), "shapes", "embedding")
    assert caught.value.code == "model_application_conflict"
    assert "autotagging" in caught.value.message


def test_list_models_by_application(client: Client, tmp_path: Path) -> None:
    client.register_model(make_bundle(tmp_path / "b"), "tagger", "auto_tagging")
    client.register_model(
        make_bundle(tmp_path / "e", "embedding", config={"embedding_dim": 512}),
        "embedder",
        "embedding",
    )
    client.register_model(
        make_bundle(tmp_path / "a", "auto_annotation"), "annotator", "auto_annotation"
    )
    assert [m["name"] for m in client.list_models()] == ["annotator", "embedder", "tagger"]
    assert [m["name"] for m in client.list_models("autotagging")] == ["tagger"]
    assert [m["name"] for m in client.list_models("auto_tagging")] == ["tagger"]
    assert client.get_model("embedder")["version"]["embedding_dim"] == 512
    with pytest.raises(BadRequest) as caught:
        client.list_models("detection")
    assert "auto_annotation" in caught.value.message


def test_versions_are_immutable_in_the_database(
    client: Client, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    client.register_model(make_bundle(tmp_path / "e", "embedding"), "embedder", "embedding")
    # the trigger's restrict_violation reaches callers as the engine's Conflict (409)
    with pytest.raises(EngineConflict, match="immutable"), session_scope(session_factory) as s:
        s.execute(text("UPDATE model_versions SET sha256 = 'x'"))
    with session_scope(session_factory) as s:  # embedding_dim is recorded once
        s.execute(text("UPDATE model_versions SET embedding_dim = 2048"))
    with pytest.raises(EngineConflict, match="immutable"), session_scope(session_factory) as s:
        s.execute(text("UPDATE model_versions SET embedding_dim = 1024"))


def test_delete_removes_the_model_and_keeps_shared_blobs(
    client: Client, api_settings: Settings, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    bundle = make_bundle(tmp_path / "b")
    client.register_model(bundle, "one", "autotagging")
    client.register_model(bundle, "two", "autotagging")  # same bytes: one shared blob
    assert len(stored_blobs(api_settings)) == 1
    client.delete_model("one")
    with pytest.raises(NotFound):
        client.get_model("one")
    assert client.get_model("two")["version"]["version"] == 1
    assert len(stored_blobs(api_settings)) == 1
    with pytest.raises(NotFound) as caught:
        client.delete_model("one")
    assert "Registered models: two" in caught.value.message
    with pytest.raises(BadRequest):
        client.delete_model("two@1")

    # While a queued or running job uses the model, deleting is refused; once it is over, not.
    from engine.db.jobs import Job

    with session_scope(session_factory) as s:
        version_id = s.scalars(select(ModelVersion.id).join(Model).where(Model.name == "two")).one()
        job = Job(
            kind="autotagging", platform="local", status="running", model_version_id=version_id
        )
        s.add(job)
        s.flush()
        job_id = job.id
    with pytest.raises(Conflict) as conflict:
        client.delete_model("two")
    assert conflict.value.code == "model_in_use"
    assert str(job_id) in conflict.value.message
    with session_scope(session_factory) as s:
        s.execute(text("UPDATE jobs SET status = 'succeeded' WHERE id = :id"), {"id": job_id})
    client.delete_model("two")
    with pytest.raises(NotFound):
        client.get_model("two")


def test_scopes(
    api_url: str, make_key: Callable[..., str], tmp_path: Path, api_settings: Settings
) -> None:
    """Registering and deleting models is an admin's: a bundle is code the engine runs."""
    bundle = make_bundle(tmp_path / "b")
    with Client(api_url, make_key("write", name="writer")) as writer:
        with pytest.raises(Forbidden) as refused:
            writer.register_model(bundle, "shapes", "autotagging")
        assert (
            "registering a model makes the engine run the bundle's code, so it needs "
            "'admin'" in refused.value.message
        )
        assert refused.value.status == 403
        assert writer.list_models() == []
        assert stored_blobs(api_settings) == []
    with Client(api_url, make_key("admin", name="admin")) as admin:
        assert admin.register_model(bundle, "shapes", "autotagging")["version"] == 1
    for scope in ("read", "write"):
        with Client(api_url, make_key(scope, name=scope)) as weaker:
            with pytest.raises(Forbidden):
                weaker.register_model(bundle, "other", "autotagging")
            for force in (False, True):
                with pytest.raises(Forbidden) as refused:
                    weaker.delete_model("shapes", force=force)
                assert "'admin'" in refused.value.message
            assert [m["name"] for m in weaker.list_models()] == ["shapes"]
            assert weaker.get_model("shapes@1")["version"]["version"] == 1
    response = httpx.get(f"{api_url}/api/v1/models")
    assert response.status_code == 401
    with Client(api_url, make_key("admin", name="admin")) as admin:
        admin.delete_model("shapes")
        assert admin.list_models() == []


def test_a_system_model_survives_deleting_every_other_model(
    client: Client, api_settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    templates = tmp_path / "model_templates"
    make_bundle(templates / "resnet50_embedding", "embedding", config={"weights": "resnet50-*.pth"})
    with session_scope(session_factory) as session:
        install_defaults(
            session=session,
            storage=registry_storage(api_settings),
            settings=api_settings,
            templates=templates,
            applications=["embedding"],
        )
    client.register_model(make_bundle(tmp_path / "b"), "mine", "autotagging")
    models = client.list_models()
    assert {m["name"]: m["is_system"] for m in models} == {"default-embedding": True, "mine": False}
    refusals = []
    for model in models:  # "delete everything"
        try:
            client.delete_model(model["name"])
        except Conflict as refused:
            refusals.append(refused)
    assert [(r.code, r.status) for r in refusals] == [("system_model", 409)]
    assert "force" in refusals[0].message
    assert [m["name"] for m in client.list_models()] == ["default-embedding"]
    client.delete_model("default-embedding", force=True)  # an admin, forcing it
    assert client.list_models() == []


@pytest.mark.parametrize("name", ["default", "default-autotagging", "has space", "a@1", "-x"])
def test_reserved_and_invalid_names_are_refused(client: Client, tmp_path: Path, name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        client.register_model(make_bundle(tmp_path / "b"), name, "autotagging")
    assert caught.value.code == "invalid_model_name"


def test_unknown_application_lists_the_accepted_values(
    client: Client, api_url: str, admin_key: str, tmp_path: Path
) -> None:
    with pytest.raises(BadRequest) as caught:
        client.register_model(make_bundle(tmp_path / "b"), "shapes", "detection")
    assert "'auto_tagging'" in caught.value.message
    response = httpx.post(
        f"{api_url}/api/v1/models/shapes/versions",
        params={"application": "detection"},
        content=b"x",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_application"
    assert "'embedding'" in response.json()["error"]["message"]


def test_model_id_and_model_name_must_agree(client: Client, tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        client.register_model(make_bundle(tmp_path / "b"), "a", "autotagging", model_name="b")
    with pytest.raises(BadRequest, match="does not exist"):
        client.register_model(tmp_path / "nowhere", "a", "autotagging")


def test_concurrent_registrations_of_a_new_name_number_in_turn(
    api_url: str, admin_key: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bundles = [make_bundle(tmp_path / f"b{i}", weights_bytes=f"w{i}".encode()) for i in range(4)]

    def register(bundle: Path) -> int:
        with Client(api_url, admin_key) as own:
            return int(own.register_model(bundle, "raced", "embedding")["version"])

    with ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(register, bundles))
    assert versions == [1, 2, 3, 4]


def test_a_slow_upload_does_not_block_other_requests_with_the_same_key(
    client: Client, api_url: str, admin_key: str, tmp_path: Path
) -> None:
    import threading
    import time

    archive = tar_folder(make_bundle(tmp_path / "b"), tmp_path / "b.tar.gz").read_bytes()
    started = threading.Event()

    def slow_body() -> Any:
        yield archive[:100]
        started.set()
        time.sleep(3)
        yield archive[100:]

    def upload() -> int:
        return httpx.post(
            f"{api_url}/api/v1/models/slow/versions",
            params={"application": "autotagging"},
            content=slow_body(),
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=30,
        ).status_code

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        status = pool.submit(upload)
        assert started.wait(10)
        time.sleep(0.3)
        begin = time.monotonic()
        assert client.list_models() == []
        assert time.monotonic() - begin < 1.5
        assert status.result() == 201
    assert client.get_model("slow")["latest_version"] == 1
