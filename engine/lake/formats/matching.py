"""Which lake file an annotation document's image refers to.

An image path is tried as `<collection>_<path>` for the whole path and each shorter tail, then
as a unique name itself, and a bare file name as the one file of that name in any subfolder;
YOLO stems are matched the same way without the extension (`labels`
also read as `images`), and a stem fitting two files is ambiguous. Rules: docs/annotations.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from engine.lake.formats.parsed import ParsedImage

Outcome = Literal["matched", "unknown", "ambiguous"]


@dataclass(frozen=True)
class LakeFile:
    id: int
    unique_name: str
    width: int | None
    height: int | None


def normalize_path(path: str) -> str:
    """Forward slashes, no leading `./` or `/`."""
    key = path.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key.lstrip("/")


def _tails(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[k:]) for k in range(len(parts))]


def _stem(name: str) -> str:
    head, dot, _ = name.rpartition(".")
    return head if dot and head else name


class FileIndex:
    """The files of one collection, indexed for matching."""

    def __init__(self, collection_name: str, files: list[LakeFile]) -> None:
        self.prefix = f"{collection_name}_"
        self.by_name = {f.unique_name: f for f in files}
        self.by_stem: dict[str, list[LakeFile]] = defaultdict(list)
        # `<collection>_nest_img1.jpg` under `img1.jpg` (and `nest_img1.jpg`): a bare file
        # name finds its file in a subfolder.
        self.by_tail: dict[str, list[LakeFile]] = defaultdict(list)
        for f in files:
            self.by_stem[_stem(f.unique_name)].append(f)
            if f.unique_name.startswith(self.prefix):
                rest = f.unique_name[len(self.prefix) :]
                for at, char in enumerate(rest):
                    if char == "_" and rest[at + 1 :]:
                        self.by_tail[rest[at + 1 :]].append(f)

    def match(self, image: ParsedImage) -> tuple[Outcome, LakeFile | None]:
        path = normalize_path(image.key)
        if image.match == "stem":
            return self._by_stem(path)
        for tail in _tails(path):
            found = self.by_name.get(self.prefix + tail.replace("/", "_"))
            if found is not None:
                return "matched", found
        found = self.by_name.get(path.replace("/", "_"))
        if found is not None:
            return "matched", found
        if "/" not in path:  # a bare file name: the one file of that name in a subfolder
            tails = self.by_tail.get(path, [])
            if len(tails) == 1:
                return "matched", tails[0]
            if len(tails) > 1:
                return "ambiguous", None
        return "unknown", None

    def _by_stem(self, path: str) -> tuple[Outcome, LakeFile | None]:
        variants = [path]
        parts = path.split("/")
        if "labels" in parts[:-1]:
            at = len(parts) - 2 - parts[-2::-1].index("labels")
            variants.append("/".join([*parts[:at], "images", *parts[at + 1 :]]))
        names: list[str] = []
        for same_depth in zip(*(_tails(v) for v in variants), strict=True):  # longest first
            names.extend(self.prefix + t.replace("/", "_") for t in same_depth)
        names.append(path.replace("/", "_"))
        for name in names:
            found = self.by_stem.get(name, [])
            if len(found) == 1:
                return "matched", found[0]
            if len(found) > 1:
                return "ambiguous", None
        return "unknown", None
