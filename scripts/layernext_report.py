"""Print (or `--write [PATH]`) the LayerNext compatibility report, `docs/layernext.md`: each
public call of LayerNext's `LayerNextClient` (package `layernext` 2.3.4) with its status here
(works / differs / not yet) and notes.

The calls and their signatures come from `sdk.layernext.LayerNextClient` (the compatibility
test holds them equal to the package's); the statuses and notes from `STATUS` below
(`tests/test_layernext_report.py` checks that every "not yet" call raises `NotSupportedYet`
and no other does, and that the page is current). `package_source()` fetches the package's
source for the compatibility test.
"""

# ruff: noqa: E501  (the STATUS notes are table rows, one a line)

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "layernext.md"
PACKAGE, VERSION = "layernext", "2.3.4"
START, END = "<!-- layernext:start -->", "<!-- layernext:end -->"

WORKS, DIFFERS, NOT_YET = "works", "differs", "not yet"

STATUS: dict[str, tuple[str, str]] = {
    # -- data lake
    "file_upload": (WORKS, "As `upload_files_to_collection`; `collection_type` may be LayerNext's MediaType number."),
    "upload_files_to_collection": (DIFFERS, "Returns `{is_success, job_id, collection_id}`; files are registered when it returns, so `job_id` (`upload-<collection id>`) is already complete. `Tags` in `meta_data_object` become tags. `storage_prefix_path` is not supported (files stay where they are, or go to managed storage)."),
    "create_or_update_collection": (DIFFERS, "Returns `{is_success, collection_id}`. `custom_meta_object` is refused: collections carry no metadata here."),
    "get_collection_id_by_name": (WORKS, "Ids are integers here (LayerNext's are 24 hex digits)."),
    "get_collection_details": (WORKS, "`fields_filter` in LayerNext's names (`name`, `fileCount`, `createdAt`, ...)."),
    "get_file_details": (WORKS, "Adds `Tags` (tag names); `fields_filter` in LayerNext's names (`storagePath`, `Tags`, ...) or any metadata key."),
    "get_system_stat_count": (WORKS, "`{isSuccess, imageCount, videoCount, otherCount, collectionCount}`; the lake holds no 'other' files."),
    "get_valid_sort_fields": (DIFFERS, "No `video_index`: videos are whole files here, not frames."),
    "get_item_list_from_datalake": (WORKS, "A list of items (`uniqueName`, `url`, metadata, `Tags`, annotations); `sort_order` is applied by the engine."),
    "get_item_list_from_collection": (WORKS, "As `get_item_list_from_datalake`, for one collection."),
    "get_item_count_from_metalake": (WORKS, "`{isSuccess, itemCount}`."),
    "get_item_count_from_collection": (WORKS, "`{isSuccess, itemCount}`."),
    "download_files_from_collection": (WORKS, "One page of files, named by unique name, into `custom_download_path`."),
    "download_files_from_metalake": (WORKS, "One page of files, named by unique name, into `custom_download_path`."),
    "download_collection": (WORKS, "Writes `annotations.json` (the MetaLake annotation JSON, pixels) and `images/`; `annotation_type` and `operation_id_list` filter it."),
    "download_annotations": (WORKS, "`download_collection` of one operation (or of human annotations when `operation_id` is None)."),
    "get_downloadable_url": (WORKS, "A signed URL (an hour by default), fetchable without a key."),
    "get_upload_status": (WORKS, "Uploads end before their call returns: `COMPLETED`, with the file and failure counts."),
    "trash_objects_from_datalake": (WORKS, "The selected files leave the lake at once with their annotations, tags and vectors; managed bytes no other file shares are removed. Refused (409) for files an unfinished job or a dataset version holds. No undo yet."),
    "trash_objects_from_collection": (DIFFERS, "As `trash_objects_from_datalake`, for the collection's files; without query and filter, all of them (LayerNext trashes the collection itself; here the emptied collection stays)."),
    # -- metadata and annotations
    "upload_metadata_for_files": (WORKS, "`{files: [{file, metadata}]}`, files by path in the uploaded folder; `Tags` become tags."),
    "upload_metadata_by_unique_name": (WORKS, "Files by unique name; `Tags` become tags. All files are checked before any is written."),
    "upload_metadata_by_job_id": (WORKS, "Files of the upload with that `job_id`, by path in the uploaded folder."),
    "upload_metadata_by_storage_path": (WORKS, "A storage path is a key of `bucket_name` (`s3://bucket/key`), an absolute path or a full URI; every file registered there gets the metadata. All are checked before any is written."),
    "upload_metadata_for_collection": (DIFFERS, "Applies the object to every file of the collection; `is_apply_to_all_files=False` (metadata of the collection itself) is refused."),
    "upload_annotations_for_collection": (WORKS, "LayerNext's annotation JSON (`type`: rectangle, polygon, points) is translated to the engine's; `line` is refused. Uploading an operation again replaces it."),
    "upload_annotations_by_unique_name": (WORKS, "Sent to each file's first collection, one request per collection."),
    "upload_annotations_by_job_id": (WORKS, "The files of the upload with that `job_id`."),
    "upload_annotations_by_storage_path": (WORKS, "Storage paths as in `upload_metadata_by_storage_path` (an image's `storageName` is its bucket); sent per collection as `upload_annotations_by_unique_name`."),
    "upload_annoations_for_folder": (DIFFERS, "LayerNext's spelling, beside `sdk.Client.upload_annotations_for_folder`. `destination_project_id` is refused: make the Label Studio project after the upload."),
    "upload_data": (WORKS, "Upload images, then their annotations."),
    "remove_annotations": (WORKS, "Removes the operation's annotations from the collection's files; NotFound when it has none."),
    # -- analysis
    "register_model": (WORKS, "`task`: auto_tagging, auto_annotation or embedding; returns the new version."),
    "auto_tag_collection": (WORKS, "Returns `{jobId}`."),
    "generate_auto_tags_to_metalake": (WORKS, "Returns `{jobId}`."),
    "generate_embeddings_for_collection": (WORKS, "Returns `{jobId}`."),
    "generate_embeddings_to_metalake": (WORKS, "Returns `{jobId}`."),
    "auto_annotate_project": (DIFFERS, "Runs an auto-annotation job over the project's lake files (`annotation_type` 'segment': polygons, 'rectangle': boxes; options `prompt`, `confidence_threshold`, `inference_platform`), waits for it, and attaches its machine annotations as the tasks' predictions (`model_version` `job-<jobId>`); returns `{jobId}` once they are in the project (LayerNext returns at once)."),
    "prompt_inference": (NOT_YET, "LayerNext sends a box or clicks on one image to its interactive (SAM) segmenter and returns nothing; the engine's prompt models take label text, not boxes or clicks. For one image's predictions: `sdk.Client.predict(image_path, model_id)`."),
    "insert_image_embeddings_batch": (WORKS, "Up to 100 vectors (LayerNext's limit) in one request, all or nothing; returns `{success, upsert_count, message, job_id}`."),
    "insert_image_embeddings": (WORKS, "Any number, in batches counted on one job; returns `{success, upsert_count, message, job_id}`."),
    "get_embedding_vector": (WORKS, "`[{uniqueName, embeddings}]` in the order asked."),
    "wait_for_job_complete": (WORKS, "`{is_success, job_status}`; a failed or cancelled job is `FAILED` with `error` (LayerNext says COMPLETED)."),
    "create_or_update_job": (NOT_YET, "LayerNext's SDK opens with it the server job its analysis calls run; here the engine makes the job of every call itself (each returns its `jobId`), so scripts need no record of their own. List jobs with `sdk.Client.list_jobs`."),
    # -- labels
    "get_all_labels": (WORKS, "The label registry by name: `id` (the label reference), `name`, `description`, `attributes`, `groups`."),
    "get_labels_in_group": (WORKS, "The labels of one group."),
    "create_system_label": (WORKS, "Takes LayerNext's `{className, description, attributes: [{attributeName, values: [{valueName}]}]}`; returns `{label_reference, ...}`. An existing name returns its label."),
    "create_label_group": (WORKS, "Returns the group (`id`, `name`, `labels`, `label_ids`); a taken name is a 409."),
    "attach_labels_to_group": (WORKS, "Returns the group."),
    "detach_labels_from_group": (WORKS, "Returns the group."),
    "get_all_label_groups": (WORKS, "Every group with its labels."),
    # -- datasets
    "create_dataset_from_collection": (WORKS, "A frozen, split dataset version; returns `{isSuccess, version_id, ...}`. `operation_list` / `augmentation_list` are refused."),
    "create_dataset_from_datalake": (WORKS, "As `create_dataset_from_collection`, over the lake."),
    "update_dataset_version_from_collection": (DIFFERS, "Always adds a version (versions are frozen), whatever `is_new_version_required` says."),
    "update_dataset_version_from_datalake": (DIFFERS, "Always adds a version (versions are frozen), whatever `is_new_version_required` says."),
    "delete_dataset_version": (WORKS, "Deletes the dataset with its last version."),
    "download_dataset": (WORKS, "Writes the version in `export_type` (coco, yolo, voc, ...) and returns the export report."),
    # -- annotation projects (Label Studio)
    "create_annotation_project_from_collection": (WORKS, "A Label Studio project of the collection's images, machine labels as predictions; `fps`, `frames_per_task`, `assign_to_all`, `send_email` are ignored."),
    "create_annotation_project_from_datalake": (WORKS, "A Label Studio project of the lake's images the query and filter select, as `create_annotation_project_from_collection`; `content_type` must be `image`."),
    "add_files_to_annotation_project_from_collection": (WORKS, "Tasks (signed URLs, machine labels as predictions) for the selected images the project has no task of yet; labels the config lacks are added. Returns `{is_success, task_count, skipped, prediction_count, labels_added}`; `fps`, `frames_per_task`, `assign_to_all`, `send_email`, `default_shape_type` are ignored."),
    "add_files_to_annotation_project_from_datalake": (WORKS, "As `add_files_to_annotation_project_from_collection`, of the lake's images; a query or filter is needed, `content_type` must be `image`."),
    "attach_model_run_to_project": (WORKS, "The operations' boxes and polygons on the project's images become predictions (`model_version`: the operation id), one per operation and task; labels the config lacks are added. An operation with no annotations is NotFound."),
    "delete_annotation_project": (DIFFERS, "Deletes the Label Studio project; the annotations already downloaded into the lake stay."),
    "add_labels_to_studio_project": (WORKS, "Adds the labels (names, or `{label}` / `{className}` objects) to every label control of the project's labeling config; returns the project (`labels`, `task_count`, ...)."),
    "remove_labels_to_studio_project": (WORKS, "Takes the labels out of every label control; refused when a control would be left empty, and by Label Studio while an annotation uses one."),
    "get_annotation_project_list": (WORKS, "Every project of the engine's Label Studio: `{id, name, project_url, task_count, labels, created_at}`."),
    "get_annotation_project_name_by_id": (WORKS, "`{projectName}`."),
    "attach_label_group_to_annotation_project": (WORKS, "The group's labels (the lake's label registry) are added to the project's labeling config."),
    "download_project_annotations": (DIFFERS, "Brings the project's human annotations into the lake (operation `labelstudio:<id>`) instead of a folder; write them out with `download_collection`. `task_status_list` and `custom_download_path` are refused."),
    "download_annotation_projects": (DIFFERS, "`download_project_annotations` of each project."),
}  # fmt: skip


@dataclass(frozen=True)
class Call:
    name: str
    parameters: tuple[tuple[str, str | None], ...]  # (name, default as source text or None)
    var_keyword: bool


def package_calls(source: str) -> list[Call]:
    """The public methods of `LayerNextClient` in the package's `__init__.py` source, in order."""
    tree = ast.parse(source)
    client = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LayerNextClient"
    )
    calls = []
    for node in client.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        args = node.args.posonlyargs + node.args.args
        defaults = [None] * (len(args) - len(node.args.defaults)) + list(node.args.defaults)
        parameters = tuple(
            (a.arg, None if d is None else repr(ast.literal_eval(d)))
            for a, d in zip(args, defaults, strict=True)
            if a.arg != "self"
        )
        calls.append(Call(node.name, parameters, node.args.kwarg is not None))
    return calls


def our_call(name: str) -> Call | None:
    """The same description of `sdk.LayerNextClient`'s method, or None when it has none."""
    from sdk import LayerNextClient

    method = getattr(LayerNextClient, name, None)
    if method is None:
        return None
    parameters = []
    var_keyword = False
    for p in inspect.signature(method).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            parameters.append((p.name, None if p.default is p.empty else repr(p.default)))
    return Call(name, tuple(parameters), var_keyword)


def package_source(cache: Path) -> str:
    """The source of `layernext/__init__.py` 2.3.4, downloaded once into `cache` with
    `pip download` (no install, nothing of it imported)."""
    target = cache / f"{PACKAGE}-{VERSION}" / "__init__.py"
    if not target.is_file():
        downloads = cache / f"{PACKAGE}-{VERSION}-download"
        downloads.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps",
             "--disable-pip-version-check", "-q", "-d", str(downloads)],
            check=True,
        )  # fmt: skip
        archive = next(p for p in sorted(downloads.iterdir()) if p.name.startswith(PACKAGE))
        member = f"{PACKAGE}/__init__.py"
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as opened:
                data = opened.read(member)
        else:
            with tarfile.open(archive) as opened:
                name = next(n for n in opened.getnames() if n.endswith("/" + member))
                handle = opened.extractfile(name)
                assert handle is not None
                data = handle.read()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(target)
    return target.read_text(encoding="utf-8")


def _signature(call: Call) -> str:
    parts = [n if d is None else f"{n}={d}" for n, d in call.parameters]
    if call.var_keyword:
        parts.append("**kwargs")
    return f"`{call.name}({', '.join(parts)})`"


def table() -> str:
    from sdk import LayerNextClient

    counts = {WORKS: 0, DIFFERS: 0, NOT_YET: 0}
    rows = []
    for name in STATUS:
        call = our_call(name)
        if call is None:
            raise SystemExit(f"{name} is in STATUS but not a method of LayerNextClient")
        status, note = STATUS[name]
        counts[status] += 1
        rows.append(f"| {_signature(call)} | {status} | {note} |")
    public = {n for n, v in vars(LayerNextClient).items() if callable(v) and not n.startswith("_")}
    missing = sorted(n for n in public - set(STATUS) if n != "close")
    if missing:
        raise SystemExit(f"LayerNextClient calls without a STATUS entry: {missing}")
    summary = (
        f"{len(STATUS)} calls: {counts[WORKS]} work, {counts[DIFFERS]} work with the "
        f"differences noted, {counts[NOT_YET]} are not supported yet (they raise "
        "`sdk.errors.NotSupportedYet` saying what to use instead)."
    )
    return "\n".join([summary, "", "| call | status | notes |", "| --- | --- | --- |", *rows])


def render(page: str) -> str:
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    if len(sys.argv) in (2, 3) and sys.argv[1] == "--write":
        path = Path(sys.argv[2]) if len(sys.argv) == 3 else PAGE
        path.write_text(render(path.read_text()))
        return 0
    if len(sys.argv) > 1:
        print("usage: layernext_report.py [--write [PATH]]  (PATH: docs/layernext.md)")
        return 2
    print(table())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    raise SystemExit(main())
