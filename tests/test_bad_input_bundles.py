"""Bad bundles through the SDK and the real API: every rule the registry refuses with, crafted
archives, broken code and labels. Each is a 4xx naming the file and the rule, with a message of
readable length, and the registry is left exactly as it was: no model or version row, no
stored object.

`tests/test_registry_api.py::REFUSALS` already covers absolute and `../` member paths, links
to absolute targets, devices and FIFOs, too many files, a 0-byte archive, a plain tar named
`.tar.gz`, a missing or empty inference.py, a syntax error, a missing hook, requirements, a
missing or duplicated label list and missing or empty weights; the cases here are the others,
and `test_every_refusal_rule_of_the_engine_is_exercised` keeps the two tables complete.
"""

from __future__ import annotations

import ast
import gzip
import io
import random
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.models import Model
from engine.db.session import session_scope
from engine.errors import BundleInvalid
from engine.registry.archive import Limits, extract_bundle
from engine.registry.bundle import validate_bundle
from sdk import BadRequest, Client
from tests.fixtures.bundle_factory import (
    INFERENCE,
    file_member,
    link_member,
    make_bundle,
    tar_folder,
    tar_members,
    valid_members,
)
from tests.test_registry_api import REFUSALS, registry_state

ENGINE = Path(__file__).resolve().parents[1] / "engine"
MAX_MESSAGE = 1500  # a refusal is read by a person: never pages of repr


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"bundle_max_bytes": 8 << 20})


Build = Callable[[Path], Path]


def _archive(*members: tuple[tarfile.TarInfo, bytes | None], base: bool = True) -> Build:
    def build(work: Path) -> Path:
        return tar_members(work / "bad.tar.gz", [*(valid_members() if base else []), *members])

    return build


def _bytes(content: bytes) -> Build:
    def build(work: Path) -> Path:
        (work / "bad.tar.gz").write_bytes(content)
        return work / "bad.tar.gz"

    return build


def _good_archive_bytes(work: Path) -> bytes:
    bundle = make_bundle(work / "src", weights_bytes=random.Random(5).randbytes(50_000))
    return tar_folder(bundle, work / "good.tar.gz").read_bytes()


def _damaged(damage: Callable[[bytes], bytes]) -> Build:
    def build(work: Path) -> Path:
        (work / "bad.tar.gz").write_bytes(damage(_good_archive_bytes(work)))
        return work / "bad.tar.gz"

    return build


def _flip(data: bytes) -> bytes:
    """One byte changed inside the deflate stream of the weights: gzip's CRC-32 notices."""
    changed = bytearray(data)
    changed[len(data) // 2] ^= 0x01
    return bytes(changed)


def _labels(text: str) -> Build:
    def build(work: Path) -> Path:
        bundle = make_bundle(work / "bad")
        (bundle / "label_list.yaml").write_text(text)
        return bundle

    return build


def _config(text: str) -> Build:
    def build(work: Path) -> Path:
        bundle = make_bundle(work / "bad")
        (bundle / "metalake.yaml").write_text(text)
        return bundle

    return build


def _folder(**kwargs: Any) -> Build:
    def build(work: Path) -> Path:
        return make_bundle(work / "bad", **kwargs)

    return build


def _laughs(depth: int) -> str:
    """A label list whose first entry is 10**depth strings through YAML aliases (1 KB)."""
    levels = ["&l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, depth)]
    return f"- [{', '.join(levels)}]\n"


def _folder_named(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


# case -> (bundle, rule, path): the refusal must name that rule and that path.
CASES: dict[str, tuple[Build, str, str]] = {
    # archives: links that leave the bundle in ways a lexical check misses
    "relative symlink up and out": (
        _archive(link_member("code/up", "../../escaped")),
        "link_escape",
        "code/up",
    ),
    "symlink through a symlink to the root": (
        _archive(link_member("a", "."), link_member("a/b", "../escaped")),
        "link_escape",
        "a/b",
    ),
    "symlink made to escape by a later member": (
        _archive(link_member("x", "b/c/.."), _folder_named("b"), link_member("b/c", "..")),
        "link_escape",
        "x",
    ),
    # archives: not a bundle archive at all, or damaged
    "a text file named .tar.gz": (
        _bytes(b"model weights are in the other folder\n"),
        "archive_not_gzip",
        "(archive)",
    ),
    "a zip file named .tar.gz": (
        _bytes(b"PK\x03\x04" + bytes(60)),
        "archive_not_gzip",
        "(archive)",
    ),
    "gzip of something that is not a tar": (
        _bytes(gzip.compress(b"not a tar " * 100)),
        "archive_corrupt",
        "(archive)",
    ),
    "truncated upload": (
        _damaged(lambda data: data[: len(data) // 2]),
        "archive_corrupt",
        "(archive)",
    ),
    "one flipped byte": (_damaged(_flip), "archive_corrupt", "(archive)"),
    "garbage after the gzip stream": (
        _damaged(lambda data: data + b"junk"),
        "archive_corrupt",
        "(archive)",
    ),
    "a member twice": (
        _archive(file_member("notes.txt", b"a"), file_member("notes.txt", b"b")),
        "duplicate_member",
        "notes.txt",
    ),
    "a file where a folder is needed": (
        _archive(file_member("code", b"x"), *valid_members(), base=False),
        "unwritable_member",
        "code/inference.py",
    ),
    "a name too long for the file system": (
        _archive(file_member("w" * 300 + ".pt", b"x")),
        "unwritable_member",
        "w" * 300 + ".pt",
    ),
    # code/inference.py
    "a hook with the wrong parameters": (
        _folder(
            inference=INFERENCE.replace(
                "def predict_fn(input_data, model)", "def predict_fn(input_data)"
            )
        ),
        "inference_signature",
        "code/inference.py",
    ),
    "inference.py not UTF-8": (
        _folder(
            inference="x = 1\n",
            extra={"code/inference.py": "# caf\xe9\n".encode("latin-1") + INFERENCE.encode()},
        ),
        "not_utf8",
        "code/inference.py",
    ),
    "inference.py nested too deeply to parse": (
        _folder(inference=INFERENCE + "x = " + "-" * 200_000 + "1\n"),
        "inference_syntax",
        "code/inference.py",
    ),
    # code/requirements.txt
    "a requirement by URL": (
        _folder(requirements="mypkg @ https://example.com/mypkg.whl\n"),
        "requirements_url",
        "code/requirements.txt",
    ),
    "a requirement that is not one": (
        _folder(requirements="numpy=>1\n"),
        "requirements_invalid",
        "code/requirements.txt",
    ),
    "an environment variable in a marker": (
        _folder(requirements='numpy; os_name == "${METALAKE_DATABASE_URL}"\n'),
        "requirements_env",
        "code/requirements.txt",
    ),
    "an environment variable in a version": (
        _folder(requirements="numpy==$VERSION\n"),
        "requirements_env",
        "code/requirements.txt",
    ),
    "a requirement pip reads as a wheel on disk": (
        _folder(requirements="evil-1.0-py3-none-any.whl\n"),
        "requirements_url",
        "code/requirements.txt",
    ),
    # label_list.yaml
    "empty label list": (_labels("[]\n"), "labels_invalid", "label_list.yaml"),
    "label list file empty": (_labels(""), "labels_invalid", "label_list.yaml"),
    "label list is a mapping": (
        _labels("names: [circle, square]\n"),
        "labels_invalid",
        "label_list.yaml",
    ),
    "label list is one string": (
        _labels("circle square triangle\n"),
        "labels_invalid",
        "label_list.yaml",
    ),
    "label list entry not a string": (
        _labels("- circle\n- [square]\n"),
        "labels_invalid",
        "label_list.yaml",
    ),
    "label list of a billion aliased strings": (
        _labels(_laughs(9)),
        "yaml_invalid",
        "label_list.yaml",
    ),
    "label list with an alias inside itself": (
        _labels("- &a [x, *a]\n"),
        "yaml_invalid",
        "label_list.yaml",
    ),
    "label list nested 101 deep": (
        _labels("- " + "[" * 101 + "]" * 101 + "\n"),
        "yaml_invalid",
        "label_list.yaml",
    ),
    "metalake.yaml of a billion aliased strings": (
        _config(_laughs(9).replace("- [", "weights: [", 1)),
        "yaml_invalid",
        "metalake.yaml",
    ),
    "label list not YAML": (_labels("- circle\n- [square\n"), "yaml_invalid", "label_list.yaml"),
    "label list nested too deeply": (
        _labels("- " + "[" * 50_000 + "\n"),
        "yaml_invalid",
        "label_list.yaml",
    ),
    "label list value its tag cannot hold": (
        _labels("- circle\n- !!float square\n"),
        "yaml_invalid",
        "label_list.yaml",
    ),
    "label list larger than 4 MB": (
        _labels("- circle\n" + "#" * (4 << 20) + "\n"),
        "file_too_large",
        "label_list.yaml",
    ),
    # metalake.yaml
    "metalake.yaml not a mapping": (
        _config("- weights: model.pt\n"),
        "config_invalid",
        "metalake.yaml",
    ),
    "metalake.yaml is a folder": (
        _folder(extra={"metalake.yaml/x": "y"}),
        "not_a_file",
        "metalake.yaml",
    ),
    "declared weights not in the bundle": (
        _config("weights: yolov8n.pt\n"),
        "weights_missing",
        "yolov8n.pt",
    ),
}


def _slug(case: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in case)


def test_each_bad_bundle_is_a_clear_4xx_and_changes_nothing(
    client: Client,
    api_settings: Settings,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    subtests: Any,
) -> None:
    client.register_model(make_bundle(tmp_path / "good"), "shapes", "autotagging")
    before = registry_state(session_factory, api_settings)
    assert (before[0], before[1], len(before[2])) == (1, 1, 1)
    for case, (build, rule, path) in CASES.items():
        with subtests.test(case=case):
            work = tmp_path / _slug(case)
            work.mkdir()
            bundle = build(work)
            for name in ("shapes", "fresh"):  # a new version of a model, and a new model
                with pytest.raises(BadRequest) as caught:
                    client.register_model(bundle, name, "autotagging")
                error = caught.value
                assert error.status == 400, error
                assert error.code == "bundle_invalid"
                assert (error.details["rule"], error.details["path"]) == (rule, path)
                assert path.strip("()") in error.message
                assert len(error.message) < MAX_MESSAGE, error.message[:300]
            assert registry_state(session_factory, api_settings) == before
            with session_scope(session_factory) as session:
                assert session.scalar(select(Model.id).where(Model.name == "fresh")) is None


def test_the_messages_say_how_to_fix_it(client: Client, tmp_path: Path) -> None:
    """A few refusals read in full: what is wrong, where, and what to do."""

    def refusal(case: str) -> str:
        work = tmp_path / _slug(case)
        work.mkdir()
        with pytest.raises(BadRequest) as caught:
            client.register_model(CASES[case][0](work), "shapes", "autotagging")
        return caught.value.message

    assert "pack it again" in refusal("one flipped byte")
    assert "tar czf" in refusal("a text file named .tar.gz")
    assert "non-empty YAML list of class names" in refusal("empty label list")
    assert "holds a dict" in refusal("label list is a mapping")
    assert "holds a str" in refusal("label list is one string")
    laughs = refusal("label list of a billion aliased strings")
    assert "aliases (`*name`) stand for more than 10,000 values" in laughs
    assert "pip expands environment variables" in refusal("an environment variable in a marker")
    assert "nested too deeply" in refusal("label list nested 101 deep")
    assert "nested too deeply" in refusal("label list nested too deeply")
    assert "remove the `!!` tag" in refusal("label list value its tag cannot hold")
    assert "pack the bundle again" in refusal("a file where a folder is needed").lower()
    assert "`predict_fn(input_data, model)`" in refusal("a hook with the wrong parameters")


def test_a_long_duplicated_label_list_is_refused_quickly(client: Client, tmp_path: Path) -> None:
    """60,000 labels, each twice: refused naming a few of them, in linear time (a quadratic
    check took minutes here)."""
    import time

    bundle = make_bundle(tmp_path / "b")
    (bundle / "label_list.yaml").write_text("".join(f"- c{i % 30_000}\n" for i in range(60_000)))
    began = time.monotonic()
    with pytest.raises(BadRequest) as caught:
        client.register_model(bundle, "shapes", "autotagging")
    assert time.monotonic() - began < 30
    assert caught.value.details["rule"] == "labels_invalid"
    assert "(and 29990 more) more than once" in caught.value.message
    assert len(caught.value.details["duplicates"]) == 100


def _rules_in(folder: Path) -> set[str]:
    """Every `rule="..."` the engine's code can refuse a bundle with."""
    rules: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                rules.update(
                    kw.value.value
                    for kw in node.keywords
                    if kw.arg == "rule"
                    and isinstance(kw.value, ast.Constant)
                    and isinstance(kw.value.value, str)
                )
    return rules


def test_every_refusal_rule_of_the_engine_is_exercised() -> None:
    exercised = {rule for _, rule, _ in CASES.values()} | {rule for _, _, rule in REFUSALS.values()}
    # a 413, asserted in tests/test_registry_api.py::test_bundles_over_the_size_limit_are_a_413
    exercised.add("too_large")
    rules = _rules_in(ENGINE)
    assert len(rules) >= 25
    assert rules <= exercised, f"refusal rules with no bad-input case: {rules - exercised}"


# -- property tests, below the API: any damage is refused or harmless; any text is a rule ------
@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, bytes]]:
    work = tmp_path_factory.mktemp("archive")
    data = _good_archive_bytes(work)
    files = {
        p.relative_to(work / "src").as_posix(): p.read_bytes()
        for p in (work / "src").rglob("*")
        if p.is_file()
    }
    return data, files


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.one_of(st.none(), st.floats(0, 1)),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
)
def test_a_damaged_archive_is_refused_or_extracts_exactly(
    good_archive: tuple[bytes, dict[str, bytes]],
    tmp_path: Path,
    cut: float | None,
    flips: list[tuple[float, int]],
) -> None:
    data, files = good_archive
    damaged = bytearray(data)
    for where, mask in flips:
        damaged[min(len(damaged) - 1, int(where * len(damaged)))] ^= mask
    if cut is not None:
        damaged = damaged[: int(cut * len(damaged))]
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(bytes(damaged))
    dest = tmp_path / "out"
    shutil.rmtree(dest, ignore_errors=True)
    try:
        root = extract_bundle(archive, dest, Limits(max_bytes=10 << 20, max_files=100))
    except BundleInvalid as err:  # a damaged header may read as any member-level rule
        error = err
    else:
        extracted = {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }
        assert extracted == files  # never a silently different bundle
        return
    assert error.rule
    assert len(error.message) < MAX_MESSAGE


YAML_TOKENS = [
    "- ",
    "a: ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a ",
    "!!int ",
    "!!float ",
    "!!timestamp ",
    "!!binary ",
    "!!str ",
    "!!set ",
    "!!python/name:os.system ",
    "? ",
    "|\n",
    ">\n",
    "'",
    '"',
    "#",
    "\n",
    "  ",
    "1",
    "1e999",
    "~",
    "yes",
    ".nan",
    "weights",
    "embedding_dim",
    "extra_weights",
    "model.pt",
    "../",
    "/",
    "*.pt",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "\t",
    "\ufeff",
    "<<: *a\n",
    "x",
]
REQUIREMENT_TOKENS = [
    "numpy",
    "==",
    ">=",
    "1.0",
    "; ",
    "python_version",
    "<",
    "'3.1'",
    "[",
    "]",
    "extra",
    " @ ",
    "https://x",
    "-r ",
    "--hash=",
    "\\\n",
    " #",
    " ",
    "\n",
    " and ",
    "(",
    ")",
    "!=",
    "~=",
    "===",
    "*",
    ",",
]
texts = st.one_of(
    st.text(max_size=40), st.lists(st.sampled_from(YAML_TOKENS), max_size=16).map("".join)
)
requirement_texts = st.one_of(
    st.text(max_size=40), st.lists(st.sampled_from(REQUIREMENT_TOKENS), max_size=16).map("".join)
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    labels=texts,
    config=texts,
    requirements=requirement_texts,
    application=st.sampled_from(["autotagging", "embedding"]),
)
def test_any_labels_config_or_requirements_are_accepted_or_refused_with_a_rule(
    tmp_path: Path, labels: str, config: str, requirements: str, application: str
) -> None:
    root = tmp_path / "b"
    shutil.rmtree(root, ignore_errors=True)
    make_bundle(root, application, requirements=None)
    for name, text in (
        ("label_list.yaml", labels),
        ("metalake.yaml", config),
        ("code/requirements.txt", requirements),
    ):
        (root / name).write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        validate_bundle(root, "embedding" if application == "embedding" else "autotagging")
    except BundleInvalid as err:
        error = err
    else:
        return
    assert error.rule
    assert error.path in error.message or error.path == "weights/"
    assert len(error.message) < MAX_MESSAGE


def test_a_refusal_over_raw_http_has_the_one_error_shape(
    client: Client, api_settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The raw HTTP answer of a refusal: one error shape, no traceback, the rule in details."""
    import httpx

    client.register_model(make_bundle(tmp_path / "good"), "shapes", "autotagging")
    before = registry_state(session_factory, api_settings)
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        for info, content in [*valid_members(), link_member("code/up", "../../x")]:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    response = httpx.post(
        f"{client.url}/api/v1/models/shapes/versions",
        params={"application": "autotagging"},
        content=body.getvalue(),
        headers={"Authorization": f"Bearer {client.api_key}", "Content-Type": "application/gzip"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["details"] == {"path": "code/up", "rule": "link_escape"}
    assert "Traceback" not in response.text
    assert registry_state(session_factory, api_settings) == before
