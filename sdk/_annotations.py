"""Annotation calls: per-file annotations and tags; upload, import (COCO / YOLO / VOC / Label
Studio), download.

`upload_annotations_for_folder`, `import_annotations` and `download_annotations` keep the names
and parameter order of the metadata-lake SDK they come from. Local files are read here and their
content is sent, so every call works against a remote engine. The JSON format is documented in
docs/annotations.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from tqdm import tqdm

from sdk._base import BaseClient
from sdk.errors import BadRequest, EngineUnreachable, error_for
from sdk.schemas import (
    AnnotationCreate,
    AnnotationExportPage,
    AnnotationImportRequest,
    AnnotationPublic,
    AnnotationUploadReport,
    AnnotationUploadRequest,
    ExportedImage,
    Page,
    TagPublic,
    YoloLabels,
)

PathLike = str | os.PathLike[str]
YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
CLASS_FILE_NAMES = ("classes.txt", "obj.names", "classes.names")
PROGRESS_FROM = 50  # files; smaller downloads show no progress bar


def _segment(value: str) -> str:
    return quote(value, safe="")


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise BadRequest(f"{what} {str(path)!r} is not a file.", code="invalid_path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"{what} {str(path)!r} is not UTF-8 text: {exc}.", code="invalid_annotations"
        ) from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"{what} {str(path)!r} is not valid JSON: {exc.msg} at line "
            f"{exc.lineno} column {exc.colno}; nothing was sent.",
            code="invalid_annotations",
            details={"line": exc.lineno, "column": exc.colno},
        ) from exc


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _coco_file(path: Path) -> Path:
    if path.is_dir():
        found = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
        if len(found) != 1:
            raise BadRequest(
                f"{str(path)!r} holds {len(found)} .json files; pass the COCO file itself.",
                code="invalid_path",
            )
        return found[0]
    return path


def _yolo_folder(path: Path) -> YoloLabels:
    """Label files (under `labels/` when there is one), plus data.yaml / classes.txt content."""
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise BadRequest(
            f"{str(path)!r} is not a YOLO folder (a folder of <image>.txt label "
            "files with data.yaml or classes.txt).",
            code="invalid_path",
        )
    yaml_file = (
        path
        if path.is_file() and path.suffix in (".yaml", ".yml")
        else next((root / n for n in YAML_NAMES if (root / n).is_file()), None)
    )
    class_file = next(
        (root / n for n in CLASS_FILE_NAMES if (root / n).is_file()),
        next(iter(sorted(root.glob("*.names"))), None),
    )
    label_root = root / "labels" if (root / "labels").is_dir() else root
    labels = {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(label_root.rglob("*.txt"))
        if p.is_file() and not _hidden(p, root) and p.name not in CLASS_FILE_NAMES
    }
    if not labels:
        raise BadRequest(f"No .txt label files under {str(label_root)!r}.", code="invalid_path")
    return YoloLabels(
        labels=labels,
        data_yaml=yaml_file.read_text(encoding="utf-8") if yaml_file else None,
        classes_txt=class_file.read_text(encoding="utf-8") if class_file else None,
    )


class AnnotationCalls(BaseClient):
    # -- one file ------------------------------------------------------------------------------
    def add_annotations(
        self,
        unique_name: str,
        annotations: Sequence[AnnotationCreate | Mapping[str, Any]],
    ) -> list[AnnotationPublic]:
        """Add annotations to a file (pixel geometry, e.g. `{"label": "Bird", "shape": "box",
        "geometry": {"x1": 10, "y1": 20, "x2": 110, "y2": 70}}`). All or none are stored."""
        body = [AnnotationCreate.model_validate(a).model_dump(mode="json") for a in annotations]
        rows = self._post(f"/files/{_segment(unique_name)}/annotations", json=body)
        return [AnnotationPublic.model_validate(r) for r in rows]

    def list_annotations(
        self, unique_name: str, source: str | None = None, model_version_id: int | None = None
    ) -> list[AnnotationPublic]:
        """All annotations of a file, optionally of one source or model version."""
        params: dict[str, Any] = {"page_size": 1000}
        if source is not None:
            params["source"] = source
        if model_version_id is not None:
            params["model_version_id"] = model_version_id
        found: list[AnnotationPublic] = []
        page_index = 0
        while True:
            page = Page[AnnotationPublic].model_validate(
                self._get(
                    f"/files/{_segment(unique_name)}/annotations",
                    params={**params, "page_index": page_index},
                )
            )
            found.extend(page.items)
            page_index += 1
            if not page.items or len(found) >= page.total:
                return found

    def delete_annotation(self, unique_name: str, annotation_id: int) -> None:
        self._delete(f"/files/{_segment(unique_name)}/annotations/{annotation_id}")

    def add_tags(self, unique_name: str, names: str | Sequence[str]) -> list[TagPublic]:
        """Add human tags to a file; returns all of its tags."""
        tags = [names] if isinstance(names, str) else list(names)
        rows = self._post(f"/files/{_segment(unique_name)}/tags", json=[{"name": n} for n in tags])
        return [TagPublic.model_validate(r) for r in rows]

    def list_tags(self, unique_name: str) -> list[TagPublic]:
        rows = self._get(f"/files/{_segment(unique_name)}/tags")
        return [TagPublic.model_validate(r) for r in rows]

    def delete_tag(self, unique_name: str, name: str, source: str = "human") -> None:
        self._delete(
            f"/files/{_segment(unique_name)}/tags/{_segment(name)}", params={"source": source}
        )

    # -- annotation sets -------------------------------------------------------------------------
    def upload_annotations_for_folder(
        self,
        collection_name: str,
        operation_unique_id: str,
        json_data_file_path: PathLike,
        annotation_shape_type: str,
        is_normalized: bool = False,
        is_model_run: bool = False,
    ) -> dict[str, Any]:
        """Upload a MetaLake annotation JSON for the images of a collection.

        `annotation_shape_type`: "rectangle" / "box" (`bbox` = [x, y, w, h]), "polygon", or
        "mixed". `is_normalized`: coordinates are 0..1 fractions of the image size.
        `is_model_run`: the annotations are machine-made (else human). Uploading again with the
        same `operation_unique_id` replaces that operation's earlier annotations. Returns what
        was written and which images matched no file, as a dict like every other call:
        `operation_id`, `written`, `replaced`, `matched_images`, `unknown_images`,
        `ambiguous_images`.
        """
        data = _read_json(Path(json_data_file_path).expanduser(), "The annotation file")
        request = AnnotationUploadRequest(
            operation_unique_id=operation_unique_id,
            annotation_shape_type=annotation_shape_type.lower(),  # type: ignore[arg-type]
            is_normalized=is_normalized,
            is_model_run=is_model_run,
            data=data,
        )
        result = self._post(
            f"/collections/by-name/{_segment(collection_name)}/annotations/upload",
            json=request.model_dump(mode="json"),
        )
        return AnnotationUploadReport.model_validate(result).model_dump(mode="json")

    def import_annotations(
        self,
        collection_id: int,
        path: PathLike,
        format: str = "coco",
        annotation_type: str = "human",
        *,
        operation_id: str | None = None,
    ) -> AnnotationUploadReport:
        """Import annotations for a collection's images from COCO JSON, a YOLO folder, Pascal
        VOC XML or a Label Studio JSON export.

        COCO: the JSON file (or a folder holding exactly one). YOLO: the folder of `<stem>.txt`
        label files (or its `labels/` parent) with `data.yaml` or `classes.txt`. VOC: a folder
        of `.xml` documents (searched recursively, e.g. a VOC root with `Annotations/`) or one
        `.xml` file. Label Studio: the tasks `.json` file; its `annotations` are stored as
        human, its `predictions` as machine, whatever `annotation_type` says. Importing the
        same content again replaces it instead of duplicating; pass `operation_id` to make an
        edited file replace its earlier import too.
        """
        source = Path(path).expanduser()
        fmt = format.lower()
        if not source.exists():
            raise BadRequest(f"{str(path)!r} does not exist.", code="invalid_path")
        if fmt == "coco":
            request = AnnotationImportRequest(
                format="coco",
                annotation_type=annotation_type,  # type: ignore[arg-type]
                operation_id=operation_id,
                coco=_read_json(_coco_file(source), "The COCO file"),
            )
        elif fmt == "yolo":
            request = AnnotationImportRequest(
                format="yolo",
                annotation_type=annotation_type,  # type: ignore[arg-type]
                operation_id=operation_id,
                yolo=_yolo_folder(source),
            )
        elif fmt == "voc":
            root = source if source.is_dir() else source.parent
            documents = (
                sorted(p for p in source.rglob("*.xml") if p.is_file() and not _hidden(p, root))
                if source.is_dir()
                else [source]
            )
            if not documents:
                raise BadRequest(f"No .xml VOC documents under {str(path)!r}.", code="invalid_path")
            request = AnnotationImportRequest(
                format="voc",
                annotation_type=annotation_type,  # type: ignore[arg-type]
                operation_id=operation_id,
                voc={
                    p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in documents
                },
            )
        elif fmt == "label_studio":
            request = AnnotationImportRequest(
                format="label_studio",
                operation_id=operation_id,
                label_studio=_read_json(source, "The Label Studio export"),
            )
        else:
            raise BadRequest(
                f"format must be 'coco', 'yolo', 'voc' or 'label_studio', not {format!r}.",
                code="invalid_input",
            )
        result = self._post(
            f"/collections/{collection_id}/annotations/import",
            json=request.model_dump(mode="json", exclude_none=True),
        )
        return AnnotationUploadReport.model_validate(result)

    def download_annotations(
        self,
        collection_id: int,
        model_id: int | None = None,
        *,
        output_dir: PathLike | None = None,
        include_files: bool = True,
        include_proposals: bool = False,
    ) -> Path:
        """Write `annotations.json` (the upload format, pixel coordinates) and the files under
        `images/` into `output_dir` (default `./<collection name>_annotations`); returns it.

        `model_id` keeps only the annotations of that model version. A preview job's proposed
        annotations are left out unless `include_proposals`; each annotation carries its
        `status`. Uploading the file back writes applied annotations, so leave proposals out
        of a download meant to be uploaded again. Files already there with
        the same content are not downloaded again. The folder uploads back as it is:
        `upload_files_to_collection(out / "images", ...)` then
        `upload_annotations_for_folder(name, op, out / "annotations.json", "mixed")`.
        """
        pages: list[AnnotationExportPage] = []
        while not pages or sum(len(p.images) for p in pages) < pages[0].total:
            params: dict[str, Any] = {"page_index": len(pages), "page_size": 500}
            if model_id is not None:
                params["model_version_id"] = model_id
            if include_proposals:
                params["include_proposals"] = True
            pages.append(
                AnnotationExportPage.model_validate(
                    self._get(f"/collections/{collection_id}/annotations/export", params=params)
                )
            )
            if not pages[-1].images:
                break
        name = pages[0].collection_name
        out = Path(output_dir if output_dir is not None else f"{name}_annotations").expanduser()
        out.mkdir(parents=True, exist_ok=True)
        images = [image for page in pages for image in page.images]
        if include_files:
            self._download_files(images, out / "images")
        document = {
            "collection_id": pages[0].collection_id,
            "collection_name": name,
            "model_version_id": model_id,
            "include_proposals": include_proposals,
            "images": [image.model_dump(mode="json", exclude_none=True) for image in images],
        }
        target = out / "annotations.json"
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        partial.replace(target)
        return out

    def _download_files(self, images: list[ExportedImage], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        root = folder.resolve()
        for image in tqdm(images, desc="files", unit="file", disable=len(images) < PROGRESS_FROM):
            target = (folder / image.image).resolve()
            if not target.is_relative_to(root):  # a name must not escape the folder
                target = root / _segment(image.image)
            if target.is_file() and image.sha256 and _sha256(target) == image.sha256:
                continue
            self._download(f"/files/{image.file_id}/content", target)

    def _download(self, path: str, target: Path) -> None:
        partial = target.with_name(target.name + ".partial")
        try:
            with self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = response.text
                    raise error_for(response.status_code, body)
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 16):
                        handle.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise EngineUnreachable(
                f"Lost the engine at {self.url} while downloading {path}: "
                f"{exc}. Run the call again; finished files are kept."
            ) from exc
        partial.replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
