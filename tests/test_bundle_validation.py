"""The bundle layout's rules: each refusal names the file and the rule, and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import BundleInvalid, UnknownApplication
from engine.registry.bundle import normalize_application, validate_bundle
from tests.fixtures.bundle_factory import INFERENCE, make_bundle


def _refuse(root: Path, application: str = "autotagging") -> BundleInvalid:
    with pytest.raises(BundleInvalid) as caught:
        validate_bundle(root, normalize_application(application))
    return caught.value


def test_a_valid_autotagging_bundle_is_described(tmp_path: Path) -> None:
    root = make_bundle(
        tmp_path,
        requirements="ultralytics>=8.1  # detector\n\ntimm==0.9.16\n",
        extra={"weights/other.onnx": b"x"},
    )
    info = validate_bundle(root, "autotagging")
    assert info.label_list == ["circle", "square", "triangle"]
    assert info.weights_file == "model.pt"
    assert info.embedding_dim is None
    assert [f["path"] for f in info.manifest] == [
        "code/inference.py",
        "code/requirements.txt",
        "label_list.yaml",
        "model.pt",
        "weights/other.onnx",
    ]


def test_an_embedding_bundle_needs_only_code_and_may_declare_its_dimension(tmp_path: Path) -> None:
    info = validate_bundle(make_bundle(tmp_path / "a", "embedding"), "embedding")
    assert (info.label_list, info.embedding_dim, info.weights_file) == (None, None, None)
    info = validate_bundle(
        make_bundle(
            tmp_path / "b", "embedding", config={"embedding_dim": 2048, "weights": "r50-*.pth"}
        ),
        "embedding",
    )
    assert info.embedding_dim == 2048


def test_declared_weights_are_used_and_may_be_a_pattern(tmp_path: Path) -> None:
    root = make_bundle(
        tmp_path,
        weights="weights/yolov8n.pt",
        extra={"aaa.pt": b"other"},
        config={"weights": "weights/yolov8*.pt"},
    )
    assert validate_bundle(root, "autotagging").weights_file == "weights/yolov8n.pt"


@pytest.mark.parametrize(
    ("spelling", "stored"),
    [
        ("autotagging", "autotagging"),
        ("auto_tagging", "autotagging"),
        ("auto_annotation", "auto_annotation"),
        ("embedding", "embedding"),
        (" Embedding ", "embedding"),
    ],
)
def test_application_spellings(spelling: str, stored: str) -> None:
    assert normalize_application(spelling) == stored


def test_an_unknown_application_lists_the_accepted_ones() -> None:
    with pytest.raises(UnknownApplication) as caught:
        normalize_application("segmentation")
    for accepted in ("autotagging", "auto_tagging", "auto_annotation", "embedding"):
        assert accepted in caught.value.message


def test_missing_inference_py_says_what_the_top_level_holds(tmp_path: Path) -> None:
    root = make_bundle(tmp_path)
    (root / "code" / "inference.py").rename(root / "code" / "infer.py")
    error = _refuse(root)
    assert (error.path, error.rule) == ("code/inference.py", "inference_missing")


def test_a_syntax_error_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    root = make_bundle(tmp_path, inference=INFERENCE + "\ndef broken(:\n    pass\n")
    error = _refuse(root)
    assert (error.path, error.rule) == ("code/inference.py", "inference_syntax")
    line = INFERENCE.count("\n") + 2
    assert error.details["line"] == line
    assert f"line {line}, column 12" in error.message


def test_inference_py_is_parsed_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n" + INFERENCE
    validate_bundle(make_bundle(tmp_path / "b", inference=code), "autotagging")
    assert not marker.exists()


def test_missing_hooks_are_named_with_their_signature(tmp_path: Path) -> None:
    code = INFERENCE.replace("def predict_fn", "def predict").replace("def model_fn", "def _model")
    error = _refuse(make_bundle(tmp_path, inference=code))
    assert (error.path, error.rule) == ("code/inference.py", "inference_hooks")
    assert error.details["missing"] == ["model_fn", "predict_fn"]
    assert "def predict_fn(input_data, model)" in error.message


def test_input_fn_and_output_fn_may_be_left_to_the_host(tmp_path: Path) -> None:
    code = INFERENCE.replace("def input_fn", "def _input").replace("def output_fn", "def _output")
    validate_bundle(make_bundle(tmp_path, inference=code), "autotagging")


def test_hooks_nested_in_a_class_do_not_count(tmp_path: Path) -> None:
    code = "class Handler:\n" + "".join(
        f"    def {hook}(self, a, b=None):\n        pass\n"
        for hook in ("model_fn", "input_fn", "predict_fn", "output_fn")
    )
    assert _refuse(make_bundle(tmp_path, inference=code)).rule == "inference_hooks"


def test_an_async_hook_is_refused_with_the_reason(tmp_path: Path) -> None:
    code = INFERENCE.replace("def predict_fn", "async def predict_fn")
    error = _refuse(make_bundle(tmp_path, inference=code))
    assert error.rule == "inference_hooks"
    assert "async def" in error.message


def test_a_hook_that_cannot_take_the_hosts_arguments_is_refused(tmp_path: Path) -> None:
    code = INFERENCE.replace(
        "def input_fn(request_body, request_content_type)", "def input_fn(request_body)"
    )
    error = _refuse(make_bundle(tmp_path, inference=code))
    assert (error.rule, error.details["hook"]) == ("inference_signature", "input_fn")
    assert "input_fn(request_body, request_content_type)" in error.message


def test_flexible_signatures_are_accepted(tmp_path: Path) -> None:
    code = INFERENCE.replace(
        "def model_fn(model_dir)", "def model_fn(model_dir, context=None)"
    ).replace("def output_fn(prediction, accept)", "def output_fn(*args, **kwargs)")
    validate_bundle(make_bundle(tmp_path, inference=code), "autotagging")


@pytest.mark.parametrize(
    ("text", "rule", "fragment"),
    [
        ("-r other.txt\n", "requirements_option", "-r"),
        ("--index-url https://example.com/simple\n", "requirements_option", "--index-url"),
        ("numpy==1.26 --hash=sha256:abc\n", "requirements_option", "--hash"),
        ("-e git+https://github.com/x/y.git\n", "requirements_option", "-e"),
        ("mypkg @ https://example.com/mypkg-1.0.tar.gz\n", "requirements_url", "direct URLs"),
        ("https://example.com/pkg.whl\n", "requirements_invalid", "a URL or path"),
        ("numpy=>1\n", "requirements_invalid", "line 1"),
        ("ok==1.0\n\n# fine\nnot a requirement!\n", "requirements_invalid", "line 4"),
    ],
)
def test_requirements_lines_must_be_plain_specifiers(
    tmp_path: Path, text: str, rule: str, fragment: str
) -> None:
    error = _refuse(make_bundle(tmp_path, requirements=text))
    assert (error.path, error.rule) == ("code/requirements.txt", rule)
    assert fragment in error.message


def test_requirements_txt_must_exist(tmp_path: Path) -> None:
    error = _refuse(make_bundle(tmp_path, requirements=None))
    assert (error.path, error.rule) == ("code/requirements.txt", "requirements_missing")
    assert "empty" in error.message


def test_requirements_with_markers_extras_and_continuations_are_accepted(tmp_path: Path) -> None:
    text = (
        "torchvision>=0.17; python_version >= '3.10'\nultralytics[export]==8.1.0\n"
        "scikit-learn \\\n  >=1.3\n"
    )
    validate_bundle(make_bundle(tmp_path, requirements=text), "autotagging")


@pytest.mark.parametrize(
    ("labels_text", "fragment"),
    [
        ("[]\n", "non-empty YAML list"),
        ("names: [a, b]\n", "a dict"),
        ("", "nothing"),
        ("- cat\n- dog\n- cat\n", "'cat'"),
        ("- cat\n- yes\n", "entry 1 is True"),
        ("- cat\n- ''\n", "entry 1"),
        ("- cat\n- [dog\n", "not valid YAML at line 3"),
    ],
)
def test_label_list_must_be_a_list_of_unique_names(
    tmp_path: Path, labels_text: str, fragment: str
) -> None:
    root = make_bundle(tmp_path)
    (root / "label_list.yaml").write_text(labels_text)
    error = _refuse(root)
    assert error.path == "label_list.yaml"
    assert fragment in error.message


@pytest.mark.parametrize("application", ["autotagging", "auto_annotation"])
def test_label_list_is_required_for_tagging_and_annotation(
    tmp_path: Path, application: str
) -> None:
    error = _refuse(make_bundle(tmp_path, application, labels=None), application)
    assert (error.path, error.rule) == ("label_list.yaml", "labels_missing")


def test_a_weights_file_is_required_for_tagging(tmp_path: Path) -> None:
    error = _refuse(make_bundle(tmp_path, weights=None, extra={"README.md": "hi"}))
    assert error.rule == "weights_missing"
    assert ".pt" in error.message
    assert ".onnx" in error.message


def test_an_empty_weights_file_is_refused(tmp_path: Path) -> None:
    error = _refuse(make_bundle(tmp_path, weights="yolov8n.pt", weights_bytes=b""))
    assert (error.path, error.rule) == ("yolov8n.pt", "weights_empty")


def test_declared_weights_must_be_in_the_bundle(tmp_path: Path) -> None:
    error = _refuse(make_bundle(tmp_path, config={"weights": "yolov8n.pt"}))
    assert (error.path, error.rule) == ("yolov8n.pt", "weights_missing")


@pytest.mark.parametrize(
    "config",
    [
        {"embedding_dim": 0},
        {"embedding_dim": "2048"},
        {"embedding_dim": True},
        {"weights": ["../outside.pt"]},
        {"weights": 3},
    ],
)
def test_metalake_yaml_values_are_checked(tmp_path: Path, config: dict[str, object]) -> None:
    error = _refuse(make_bundle(tmp_path, "embedding", config=config), "embedding")
    assert (error.path, error.rule) == ("metalake.yaml", "config_invalid")
