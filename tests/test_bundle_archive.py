"""Safe extraction of bundle archives (every unsafe member refused) and reproducible packing."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from engine.errors import BundleInvalid, BundleTooLarge
from engine.registry.archive import ARCHIVE, Limits, extract_bundle
from sdk.packing import pack_bundle
from tests.fixtures.bundle_factory import (
    file_member,
    link_member,
    make_bundle,
    special_member,
    tar_folder,
    tar_members,
    valid_members,
)

LIMITS = Limits(max_bytes=10 << 20, max_files=100)


def _refusal(archive: Path, tmp_path: Path, limits: Limits = LIMITS) -> BundleInvalid:
    dest = tmp_path / "out"
    with pytest.raises(BundleInvalid) as caught:
        extract_bundle(archive, dest, limits)
    # nothing was written outside the destination
    assert not (tmp_path / "escaped").exists()
    return caught.value


def test_a_folder_tarred_by_the_user_extracts_with_its_files(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", extra={"weights/extra.onnx": b"x"})
    root = extract_bundle(tar_folder(bundle, tmp_path / "b.tar.gz"), tmp_path / "out", LIMITS)
    assert root == tmp_path / "out"
    assert (root / "code/inference.py").read_text() == (bundle / "code/inference.py").read_text()
    assert (root / "weights" / "extra.onnx").read_bytes() == b"x"


def test_a_single_wrapping_folder_is_the_bundle_root(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    root = extract_bundle(
        tar_folder(bundle, tmp_path / "b.tar.gz", wrap="my_model"), tmp_path / "out", LIMITS
    )
    assert root == tmp_path / "out" / "my_model"
    assert (root / "code" / "inference.py").is_file()


def test_links_inside_the_bundle_are_kept(tmp_path: Path) -> None:
    archive = tar_members(
        tmp_path / "a.tar.gz",
        [
            *valid_members(),
            link_member("best.pt", "model.pt"),
            link_member("weights/copy.pt", "model.pt", hard=True),
            link_member("code/labels.yaml", "../label_list.yaml"),
        ],
    )
    root = extract_bundle(archive, tmp_path / "out", LIMITS)
    assert os.readlink(root / "best.pt") == "model.pt"
    assert (root / "weights" / "copy.pt").read_bytes() == b"weights"
    assert (root / "code" / "labels.yaml").read_text().startswith("- circle")


@pytest.mark.parametrize(
    ("member", "rule", "path"),
    [
        (file_member("/etc/cron.d/evil", b"x"), "absolute_path", "/etc/cron.d/evil"),
        (file_member("../escaped", b"x"), "parent_reference", "../escaped"),
        (file_member("code/../../escaped", b"x"), "parent_reference", "code/../../escaped"),
        (link_member("passwd", "/etc/passwd"), "link_escape", "passwd"),
        (link_member("code/up", "../../escaped"), "link_escape", "code/up"),
        (link_member("shadow", "/etc/shadow", hard=True), "link_escape", "shadow"),
        (link_member("up", "../escaped", hard=True), "link_escape", "up"),
        (special_member("dev/sda", tarfile.BLKTYPE), "special_file", "dev/sda"),
        (special_member("dev/tty", tarfile.CHRTYPE), "special_file", "dev/tty"),
        (special_member("pipe", tarfile.FIFOTYPE), "special_file", "pipe"),
    ],
)
def test_unsafe_members_are_refused_naming_the_member_and_rule(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], rule: str, path: str
) -> None:
    archive = tar_members(tmp_path / "a.tar.gz", [*valid_members(), member])
    error = _refusal(archive, tmp_path)
    assert (error.rule, error.path) == (rule, path)
    assert path in error.message


def test_writing_through_a_link_to_leave_the_bundle_is_refused(tmp_path: Path) -> None:
    # `a` points at the bundle root, so `a/b -> ..` is inside lexically but outside for real.
    archive = tar_members(
        tmp_path / "a.tar.gz",
        [*valid_members(), link_member("a", "."), link_member("a/b", "../escaped")],
    )
    assert _refusal(archive, tmp_path).rule == "link_escape"


def test_a_link_made_to_escape_by_a_later_member_is_refused(tmp_path: Path) -> None:
    # `x -> b/c/..` is inside when written; `b/c -> ..` later makes it resolve outside.
    folder = tarfile.TarInfo("b")
    folder.type = tarfile.DIRTYPE
    archive = tar_members(
        tmp_path / "a.tar.gz",
        [*valid_members(), link_member("x", "b/c/.."), (folder, None), link_member("b/c", "..")],
    )
    error = _refusal(archive, tmp_path)
    assert (error.rule, error.path) == ("link_escape", "x")


def test_a_member_written_twice_is_refused(tmp_path: Path) -> None:
    archive = tar_members(
        tmp_path / "a.tar.gz",
        [*valid_members(), link_member("x.pt", "model.pt"), file_member("x.pt", b"over")],
    )
    error = _refusal(archive, tmp_path)
    assert (error.rule, error.path) == ("duplicate_member", "x.pt")


def test_more_files_than_the_limit_are_refused(tmp_path: Path) -> None:
    archive = tar_members(
        tmp_path / "a.tar.gz",
        [*valid_members(), *(file_member(f"data/{i}.txt", b"x") for i in range(20))],
    )
    error = _refusal(archive, tmp_path, Limits(max_bytes=1 << 20, max_files=10))
    assert error.rule == "too_many_files"
    assert "METALAKE_BUNDLE_MAX_FILES" in error.message


def test_more_bytes_than_the_limit_are_refused_before_writing_them(tmp_path: Path) -> None:
    big = tmp_path / "b"
    make_bundle(big, weights_bytes=bytes(2 << 20))  # compresses to almost nothing
    with pytest.raises(BundleTooLarge) as caught:
        extract_bundle(
            tar_folder(big, tmp_path / "b.tar.gz"),
            tmp_path / "out",
            Limits(max_bytes=1 << 20, max_files=100),
        )
    assert caught.value.status_code == 413
    assert (caught.value.rule, caught.value.path) == ("too_large", "model.pt")
    assert not (tmp_path / "out" / "model.pt").exists()


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"")
    error = _refusal(archive, tmp_path)
    assert (error.rule, error.path) == ("archive_empty", ARCHIVE)


def test_a_plain_tar_named_tar_gz_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w") as tar:
        tar.add(make_bundle(tmp_path / "b"), arcname=".")
    error = _refusal(archive, tmp_path)
    assert error.rule == "archive_not_gzip"
    assert "tar czf" in error.message


def test_a_truncated_archive_is_refused(tmp_path: Path) -> None:
    archive = tar_folder(
        make_bundle(tmp_path / "b", weights_bytes=os.urandom(200_000)), tmp_path / "a.tar.gz"
    )
    archive.write_bytes(archive.read_bytes()[:50_000])
    assert _refusal(archive, tmp_path).rule == "archive_corrupt"


def test_gzip_of_something_else_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(gzip.compress(b"hello, not a tar file" * 100))
    assert _refusal(archive, tmp_path).rule in {"archive_corrupt", "archive_empty"}


def test_packing_is_reproducible_and_skips_hidden_and_cache_files(tmp_path: Path) -> None:
    bundle = make_bundle(
        tmp_path / "b",
        extra={
            ".git/config": "x",
            "code/__pycache__/inference.cpython-311.pyc": b"x",
            ".DS_Store": b"x",
            "notes/.ipynb_checkpoints/a.ipynb": "{}",
        },
    )
    first = tmp_path / "1.tar.gz"
    second = tmp_path / "2.tar.gz"
    pack_bundle(bundle, first)
    os.utime(bundle / "model.pt", (0, 12345))  # times do not change the bytes
    pack_bundle(bundle, second)
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )
    with tarfile.open(first) as tar:
        names = tar.getnames()
    assert sorted(names) == [
        "code",
        "code/inference.py",
        "code/requirements.txt",
        "label_list.yaml",
        "model.pt",
        "notes",
    ]


def test_packing_follows_links_to_files_outside_the_folder(tmp_path: Path) -> None:
    weights = tmp_path / "cache" / "yolo.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"real weights")
    bundle = make_bundle(tmp_path / "b", weights=None)
    (bundle / "yolo.pt").symlink_to(weights)
    (bundle / "loop").symlink_to(bundle)
    pack_bundle(bundle, tmp_path / "b.tar.gz")
    root = extract_bundle(tmp_path / "b.tar.gz", tmp_path / "out", LIMITS)
    assert not (root / "yolo.pt").is_symlink()
    assert (root / "yolo.pt").read_bytes() == b"real weights"
