"""What every template shares: the model host decodes the request and encodes the answer."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from engine.hosting import serve
from tests.fixtures import payloads
from tests.fixtures.bundles import TEMPLATE_NAMES, TEMPLATES, load_inference
from tests.fixtures.shapes import scene


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_templates_leave_request_and_answer_to_the_host(name: str) -> None:
    """A template holds what is particular to its model: model_fn and predict_fn."""
    tree = ast.parse((TEMPLATES / name / "code" / "inference.py").read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"model_fn", "predict_fn"} <= functions
    assert not functions & {"input_fn", "output_fn"}
    hooks = serve.hooks_of(load_inference(TEMPLATES / name))
    assert hooks["input_fn"] is serve.default_input_fn
    assert hooks["output_fn"] is serve.default_output_fn


def test_both_request_formats_decode_to_the_same_batch() -> None:
    images = [scene(index, size=(96, 64)).array() for index in range(3)]
    params = payloads.parameters("autotagging", (96, 64), 3)
    from_npz = serve.default_input_fn(payloads.npz_request(images, params), "application/x-npz")
    from_json = serve.default_input_fn(
        payloads.json_request(images, params).decode(), "application/json; charset=utf-8"
    )
    for decoded, parameters in (from_npz, from_json):
        assert parameters == params
        assert decoded.dtype == np.uint8
        assert np.array_equal(decoded, np.stack(images))
    assert serve.default_input_fn(payloads.npz_request(images, {}), "application/x-npz")[1] == {}


def test_answers_in_json_whatever_json_accepting_header_comes() -> None:
    for accept in ("application/json", "*/*", "", "text/html, application/json;q=0.9"):
        assert serve.default_output_fn([{"embedding": np.array([1.0])}], accept) == (
            b'[{"embedding": [1.0]}]',
            "application/json",
        )
    with pytest.raises(ValueError, match="unsupported accept type"):
        serve.default_output_fn([], "text/csv")
