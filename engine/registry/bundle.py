"""Bundle validation: the layout of section 7.1 of the SDK manual, checked once, at registration.

A bundle folder holds `code/inference.py` (the SageMaker hooks, checked by parsing the file,
never by importing it), `code/requirements.txt`, and for autotagging / auto_annotation a
`label_list.yaml` and a weights file. An optional `metalake.yaml` declares `embedding_dim` and
`weights`. Each refusal is a `BundleInvalid` naming the file, the rule and how to fix it.
"""

from __future__ import annotations

import ast
import fnmatch
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import BundleInvalid, InvalidDocument, UnknownApplication
from engine.registry.requirements import check_requirements
from engine.textformats import SIZE_SETTING, TextLimits, load_yaml, shown
from sdk.schemas import APPLICATION_SPELLINGS, Application

INFERENCE = "code/inference.py"
REQUIREMENTS = "code/requirements.txt"
LABELS = "label_list.yaml"
CONFIG = "metalake.yaml"
WEIGHTS_DIR = "weights"
WEIGHTS_EXTENSIONS = (".pt", ".pth", ".onnx", ".safetensors", ".bin", ".torchscript", ".engine")
SOURCE_MAX_BYTES = 16 << 20
GUIDE = "docs/bundles.md"
MAX_SHOWN = 10  # duplicate labels named in a refusal

# Each hook and the arguments the model host calls it with (model_fn may take a context too).
# input_fn and output_fn are optional: the host has defaults (engine.hosting.serve).
REQUIRED_HOOKS = ("model_fn", "predict_fn")
HOOKS: dict[str, tuple[tuple[str, ...], ...]] = {
    "model_fn": (("model_dir",), ("model_dir", "context")),
    "input_fn": (("request_body", "request_content_type"),),
    "predict_fn": (("input_data", "model"),),
    "output_fn": (("prediction", "accept"),),
}


def normalize_application(value: str) -> Application:
    """`auto_tagging` and `autotagging` are one application; anything unknown is refused."""
    application = APPLICATION_SPELLINGS.get(value.strip().lower()) if value else None
    if application is None:
        accepted = ", ".join(repr(s) for s in APPLICATION_SPELLINGS)
        raise UnknownApplication(
            f"Unknown application {value!r}: use one of {accepted}.",
            application=value,
            accepted=list(APPLICATION_SPELLINGS),
        )
    return application


@dataclass(frozen=True)
class BundleInfo:
    """What registration records about a valid bundle."""

    application: Application
    label_list: list[str] | None
    embedding_dim: int | None
    weights_file: str | None
    manifest: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BundleConfig:
    """The optional `metalake.yaml`."""

    embedding_dim: int | None = None
    weights: tuple[str, ...] = ()  # the model's own weights (required for tagging/annotation)
    extra_weights: tuple[str, ...] = ()  # further files by role (`extra_weights:`), optional


def validate_bundle(
    root: Path, application: Application, limits: TextLimits | None = None
) -> BundleInfo:
    """Check the bundle folder `root` for `application`; raise `BundleInvalid` on the first rule
    broken. Nothing in the bundle is executed. `limits` bound its YAML files."""
    limits = limits or TextLimits()
    check_inference(root)
    check_requirements(root / REQUIREMENTS, REQUIREMENTS)
    config = read_config(root, limits)
    needs_labels = application != Application.EMBEDDING
    labels = read_labels(root, limits) if needs_labels else None
    weights = find_weights(root, config, required=needs_labels, application=application)
    return BundleInfo(
        application=application,
        label_list=labels,
        embedding_dim=config.embedding_dim if application == Application.EMBEDDING else None,
        weights_file=weights,
        manifest=manifest(root),
    )


# -- code/inference.py ----------------------------------------------------------------------------
def check_inference(root: Path) -> None:
    path = root / INFERENCE
    if not path.is_file():
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        where = (
            f" (the bundle's top level holds: {', '.join(found[:10])})"
            if found
            else " (the bundle is empty)"
        )
        raise BundleInvalid(
            f"{INFERENCE} is missing{where}: a bundle's top level has a `code/` folder with "
            f"inference.py and requirements.txt (see {GUIDE} or copy a folder of "
            "model_templates/).",
            path=INFERENCE,
            rule="inference_missing",
        )
    source = _read(path, INFERENCE, SOURCE_MAX_BYTES)
    try:
        tree = ast.parse(source, filename=INFERENCE)
    except (RecursionError, MemoryError) as exc:  # how the parser reports a blown stack
        raise BundleInvalid(
            f"{INFERENCE} is nested too deeply for Python to parse (an expression or block "
            "thousands of levels deep); split it up (`python -m py_compile "
            f"{INFERENCE}` fails the same way).",
            path=INFERENCE,
            rule="inference_syntax",
        ) from exc
    except SyntaxError as exc:
        raise BundleInvalid(
            f"{INFERENCE} has a syntax error at line {exc.lineno}, column {exc.offset}: "
            f"{exc.msg}. Fix it (`python -m py_compile {INFERENCE}` shows the same error).",
            path=INFERENCE,
            rule="inference_syntax",
            line=exc.lineno,
            column=exc.offset,
        ) from exc
    except ValueError as exc:  # null bytes
        raise BundleInvalid(
            f"{INFERENCE} is not Python source ({exc}).", path=INFERENCE, rule="inference_syntax"
        ) from exc
    functions: dict[str, ast.FunctionDef] = {}
    coroutines: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.AsyncFunctionDef):
            coroutines.add(node.name)
    missing = [
        hook
        for hook in HOOKS
        if hook in coroutines or (hook in REQUIRED_HOOKS and hook not in functions)
    ]
    if missing:
        wrong = [hook for hook in missing if hook in coroutines]
        extra = (
            (
                f" ({', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} `async def`: the "
                "host calls the hooks synchronously, make them plain `def`)"
            )
            if wrong
            else ""
        )
        examples = "; ".join(f"`def {h}({', '.join(HOOKS[h][0])}): ...`" for h in missing)
        raise BundleInvalid(
            f"{INFERENCE} does not define {', '.join(missing)} at its top level{extra}: add "
            f"{examples} (see {GUIDE}).",
            path=INFERENCE,
            rule="inference_hooks",
            missing=missing,
        )
    for hook, calls in HOOKS.items():
        defined = functions.get(hook)
        if defined is not None and not any(_accepts(defined.args, len(call)) for call in calls):
            call = ", ".join(calls[0])
            raise BundleInvalid(
                f"{INFERENCE} line {defined.lineno}: `{hook}` cannot be called as "
                f"`{hook}({call})`, which is how the model host calls it; give it exactly "
                "those parameters.",
                path=INFERENCE,
                rule="inference_signature",
                hook=hook,
                line=defined.lineno,
            )


def _accepts(args: ast.arguments, count: int) -> bool:
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    keyword_required = any(default is None for default in args.kw_defaults)
    return (
        not keyword_required
        and required <= count
        and (args.vararg is not None or positional >= count)
    )


# -- metalake.yaml, label_list.yaml ---------------------------------------------------------------
def read_config(root: Path, limits: TextLimits | None = None) -> BundleConfig:
    path = root / CONFIG
    if not path.exists():
        return BundleConfig()
    data = _yaml(path, CONFIG, limits or TextLimits())
    if data is None:
        return BundleConfig()
    if not isinstance(data, dict):
        raise BundleInvalid(
            f"{CONFIG} must be a mapping such as `embedding_dim: 2048`, not a "
            f"{type(data).__name__}.",
            path=CONFIG,
            rule="config_invalid",
        )
    dim = data.get("embedding_dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
        raise BundleInvalid(
            f"{CONFIG}: embedding_dim must be a positive whole number (the "
            f"length of one embedding, e.g. 2048), not {shown(dim)}.",
            path=CONFIG,
            rule="config_invalid",
        )
    weights = data.get("weights")
    names = [weights] if isinstance(weights, str) else weights
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise BundleInvalid(
            f"{CONFIG}: weights must be a file name (or a list of them) "
            f"relative to the bundle root, e.g. `weights: yolov8n.pt`; got "
            f"{shown(weights)}.",
            path=CONFIG,
            rule="config_invalid",
        )
    extra = data.get("extra_weights") or {}
    if not isinstance(extra, dict) or not all(
        (isinstance(v, str) and v.strip()) or v is None for v in extra.values()
    ):
        raise BundleInvalid(
            f"{CONFIG}: extra_weights must map roles to file names (or null), "
            "e.g. `extra_weights: {segmenter: mobile_sam.pt}`; got "
            f"{shown(extra)}.",
            path=CONFIG,
            rule="config_invalid",
        )
    extra_names = [v for v in extra.values() if v]
    for name in [*names, *extra_names]:
        if name.startswith("/") or ".." in Path(name).parts:
            raise BundleInvalid(
                f"{CONFIG}: weights entry {shown(name)} must be a path inside "
                "the bundle (relative, without `..`).",
                path=CONFIG,
                rule="config_invalid",
            )
    return BundleConfig(
        embedding_dim=dim,
        weights=tuple(n.strip() for n in names),
        extra_weights=tuple(n.strip() for n in extra_names),
    )


def read_labels(root: Path, limits: TextLimits | None = None) -> list[str]:
    path = root / LABELS
    if not path.is_file():
        raise BundleInvalid(
            f"{LABELS} is missing: autotagging and auto_annotation bundles list their class "
            "names at the bundle's top level, in training order, as a YAML list "
            "(`- person`, `- bicycle`, ...).",
            path=LABELS,
            rule="labels_missing",
        )
    data = _yaml(path, LABELS, limits or TextLimits())
    if not isinstance(data, list) or not data:
        raise BundleInvalid(
            f"{LABELS} must be a non-empty YAML list of class names (`- person`, `- bicycle`, "
            f"...), in training order; it holds {_kind(data)}.",
            path=LABELS,
            rule="labels_invalid",
        )
    labels: list[str] = []
    for index, label in enumerate(data):
        if not isinstance(label, str) or not label.strip():
            raise BundleInvalid(
                f"{LABELS} entry {index} is {shown(label)}, not a class name: every entry must "
                "be a non-empty string (quote names YAML reads otherwise, e.g. `- 'yes'`, "
                "`- '1'`).",
                path=LABELS,
                rule="labels_invalid",
                index=index,
            )
        labels.append(label.strip())
    duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
    if duplicates:
        more = f" (and {len(duplicates) - MAX_SHOWN} more)" if len(duplicates) > MAX_SHOWN else ""
        raise BundleInvalid(
            f"{LABELS} lists {', '.join(map(shown, duplicates[:MAX_SHOWN]))}"
            f"{more} more than once; class names must be unique.",
            path=LABELS,
            rule="labels_invalid",
            duplicates=duplicates[:100],
        )
    return labels


def _kind(data: object) -> str:
    if data is None:
        return "nothing"
    if isinstance(data, list):
        return "an empty list"
    return f"a {type(data).__name__}"


def _yaml(path: Path, name: str, limits: TextLimits) -> Any:
    text = _read(path, name, limits.max_bytes, setting=SIZE_SETTING)
    try:
        return load_yaml(text, what=name, limits=limits)
    except InvalidDocument as exc:
        raise BundleInvalid(exc.message, path=name, rule="yaml_invalid", reason=exc.reason) from exc


def _read(path: Path, name: str, limit: int, setting: str | None = None) -> str:
    if not path.is_file():
        raise BundleInvalid(
            f"{name} is not a regular file (a folder, or a link to one): put the "
            "file itself there.",
            path=name,
            rule="not_a_file",
        )
    if path.stat().st_size > limit:
        which = f" ({setting})" if setting else ""
        raise BundleInvalid(
            f"{name} is larger than {limit:,} bytes{which}; is it the right file?",
            path=name,
            rule="file_too_large",
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BundleInvalid(
            f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8.",
            path=name,
            rule="not_utf8",
        ) from exc


# -- weights, manifest ----------------------------------------------------------------------------
def weights_candidates(root: Path) -> list[str]:
    """Weights files at the bundle root or under weights/, as bundle-relative paths."""
    found = [
        p.name
        for p in sorted(root.iterdir())
        if p.is_file() and p.suffix.lower() in WEIGHTS_EXTENSIONS
    ]
    folder = root / WEIGHTS_DIR
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in WEIGHTS_EXTENSIONS:
                found.append(path.relative_to(root).as_posix())
    return found


def declared_matches(files: list[str], entry: str) -> list[str]:
    """Bundle files a declared weights entry names: the path itself (a pattern allowed), at the
    top level or under weights/ (where the templates' model_fn looks too)."""
    return [
        f
        for f in files
        if fnmatch.fnmatchcase(f, entry) or fnmatch.fnmatchcase(f, f"{WEIGHTS_DIR}/{entry}")
    ]


def find_weights(
    root: Path, config: BundleConfig, *, required: bool, application: str
) -> str | None:
    """The bundle's (first) weights file; required for autotagging and auto_annotation."""
    files = [e["path"] for e in manifest(root)] if config.weights else []
    chosen: str | None = None
    for entry in config.weights:
        matches = declared_matches(files, entry)
        if not matches and required:
            raise BundleInvalid(
                f"{CONFIG} declares the weights file {shown(entry)}, which is not in the "
                f"bundle: add it at the bundle's top level or under {WEIGHTS_DIR}/.",
                path=entry,
                rule="weights_missing",
            )
        chosen = chosen or (matches[0] if matches else None)
    if chosen is None:
        candidates = weights_candidates(root)
        chosen = next(
            (c for c in candidates if (root / c).stat().st_size > 0),
            candidates[0] if candidates else None,
        )
    if chosen is None:
        if not required:
            return None
        raise BundleInvalid(
            f"No weights file: an {application} bundle holds its trained model at the top level "
            f"or under {WEIGHTS_DIR}/ (e.g. yolov8n.pt); accepted extensions: "
            f"{' '.join(WEIGHTS_EXTENSIONS)}.",
            path=f"{WEIGHTS_DIR}/",
            rule="weights_missing",
        )
    if (root / chosen).stat().st_size == 0:
        raise BundleInvalid(
            f"{chosen} is empty (0 bytes): copy the real weights file into the bundle.",
            path=chosen,
            rule="weights_empty",
        )
    return chosen


def manifest(root: Path) -> list[dict[str, Any]]:
    """Every file of the bundle (links to files included), sorted: `{"path", "size"}`."""
    entries: list[dict[str, Any]] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                entries.append(
                    {"path": path.relative_to(root).as_posix(), "size": path.stat().st_size}
                )
    return sorted(entries, key=lambda e: str(e["path"]))
