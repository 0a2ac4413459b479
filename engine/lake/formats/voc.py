"""Pascal VOC annotation XML: one `<annotation>` document per image.

Each `<object>`'s `name` and `bndbox` (`xmin ymin xmax ymax`, pixels as written, no 1-based
shift) become a `box`; `difficult` / `truncated` of 1 go to `metadata`, an optional `<score>`
is the confidence. The image is the document's folder under `Annotations/` plus its
`<filename>` (else the document's own stem); a stated `<size>` must equal the lake's. Entity
declarations and external references are refused (defusedxml). Mapping: docs/annotations.md.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from engine.lake.formats.matching import normalize_path
from engine.lake.formats.parsed import (
    ParsedAnnotation,
    ParsedImage,
    Problems,
    read_confidence,
    read_label,
)

CORNERS = ("xmin", "ymin", "xmax", "ymax")


def parse(documents: dict[str, str], *, document: str = "The VOC import") -> list[ParsedImage]:
    """`documents`: each XML file's path relative to the imported folder -> its text."""
    problems = Problems(document)
    images: list[ParsedImage] = []
    for path in sorted(documents):
        root = _root(path, documents[path], problems)
        if root is not None:
            images.append(_image(path, root, problems))
    problems.raise_if_any()
    return images


def _root(path: str, text: str, problems: Problems) -> Element | None:
    try:
        root: Element = fromstring(text)
    except DefusedXmlException as exc:
        problems.add(path, "", f"declares or references XML entities, which are refused ({exc}).")
        return None
    except ParseError as exc:
        problems.add(path, "", f"is not well-formed XML ({exc}).")
        return None
    if root.tag != "annotation":
        problems.add(path, "", f"the root element must be <annotation> (got <{root.tag}>).")
        return None
    return root


def _image(path: str, root: Element, problems: Problems) -> ParsedImage:
    folder = _folder(path)
    filename = (root.findtext("filename") or "").strip()
    if filename:
        name = normalize_path(filename)
        key = name if "/" in name or not folder else f"{folder}/{name}"
        image = ParsedImage(where=path, key=key)
    else:  # no file name: match the document's own stem, as YOLO label files are
        stem = normalize_path(path).rsplit(".", 1)[0]
        image = ParsedImage(where=path, key=stem, match="stem")
    size = root.find("size")
    if size is not None:
        width, height = _whole(size.findtext("width")), _whole(size.findtext("height"))
        if width and height:
            image.declared_size = (width, height)
    for k, element in enumerate(root.findall("object")):
        ann = _object(element, f"{path}:object[{k}]", problems)
        if ann is not None:
            image.annotations.append(ann)
    return image


def _folder(path: str) -> str:
    """`Annotations/nest/a.xml` -> `nest`; `x/a.xml` -> `x` (the image's folder)."""
    parts = normalize_path(path).split("/")[:-1]
    if "Annotations" in parts:
        parts = parts[len(parts) - parts[::-1].index("Annotations") :]
    return "/".join(parts)


def _object(element: Element, where: str, problems: Problems) -> ParsedAnnotation | None:
    label = read_label(element.findtext("name"), where, problems, "name")
    score = element.findtext("score")
    confidence = None
    if score is not None:
        value = _float(score)
        if value is None:
            problems.add(where, "score", f"must be a number between 0 and 1 (got {score!r}).")
        else:
            confidence = read_confidence(value, where, problems, "score")
    box = element.find("bndbox")
    if box is None:
        problems.add(where, "bndbox", "each <object> needs a <bndbox> with xmin ymin xmax ymax.")
        return None
    corners = [_float(box.findtext(corner)) for corner in CORNERS]
    if any(value is None for value in corners):
        got = ", ".join(f"{c}={box.findtext(c)!r}" for c in CORNERS)
        problems.add(where, "bndbox", f"needs xmin, ymin, xmax, ymax as numbers (got {got}).")
        return None
    if label is None:
        return None
    metadata = {
        flag: 1 for flag in ("difficult", "truncated") if (element.findtext(flag) or "0") == "1"
    }
    return ParsedAnnotation(
        where=where,
        field="bndbox",
        label=label,
        shape="box",
        values=(tuple(v for v in corners if v is not None),),
        normalized=False,
        confidence=confidence,
        metadata=metadata,
    )


def _float(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _whole(text: str | None) -> int | None:
    value = _float(text)
    return int(value) if value is not None and value > 0 and value.is_integer() else None
