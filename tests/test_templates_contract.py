"""What every template shares: the request formats the engine sends, decoded the same way."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.fixtures import payloads
from tests.fixtures.bundles import TEMPLATE_NAMES, TEMPLATES, load_inference
from tests.fixtures.shapes import scene

SECTION = re.compile(r"# --- request decoding.*?\n(.*?)\n# --- ", re.DOTALL)


def test_request_decoding_is_the_same_code_in_every_template() -> None:
    """Each template is self-contained (users copy one folder), so the decoding is repeated;
    this keeps the copies identical."""
    sections = {name: SECTION.search((TEMPLATES / name / "code" / "inference.py").read_text())
                for name in TEMPLATE_NAMES}
    assert all(sections.values()), "every template marks its request decoding section"
    assert len({match.group(1) for match in sections.values() if match}) == 1


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_both_request_formats_decode_to_the_same_batch(name: str) -> None:
    module = load_inference(TEMPLATES / name)
    images = [scene(index, size=(96, 64)).array() for index in range(3)]
    params = payloads.parameters("autotagging", (96, 64), 3)
    from_npz = module.input_fn(payloads.npz_request(images, params), "application/x-npz")
    from_json = module.input_fn(payloads.json_request(images, params),
                                "application/json; charset=utf-8")
    for batch in (from_npz, from_json):
        assert batch.parameters == params
        assert len(batch.images) == 3
        for got, sent in zip(batch.images, images, strict=True):
            assert got.dtype == np.uint8
            assert np.array_equal(got, sent)
    assert module.input_fn(payloads.npz_request(images, {}), "application/x-npz").parameters == {}


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_answers_in_json_whatever_json_accepting_header_comes(name: str) -> None:
    module = load_inference(TEMPLATES / name)
    for accept in ("application/json", "*/*", "", "text/html, application/json;q=0.9"):
        assert module.output_fn([{"embedding": [1.0]}], accept) == '[{"embedding": [1.0]}]'
    with pytest.raises(ValueError, match="unsupported accept type"):
        module.output_fn([], "text/csv")
