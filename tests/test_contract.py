"""The request the engine sends to a bundle and the validation of what comes back."""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.hosting.contract import (
    AnnotationOutput,
    EmbeddingOutput,
    TagPrediction,
    encode_batch,
    normalize_application,
    validate_outputs,
)
from engine.hosting.serve import decode_batch


def _images(n: int = 3, size: tuple[int, int] = (40, 30)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


# -- request ---------------------------------------------------------------------------------
def test_npz_batch_round_trips_without_pickle() -> None:
    images = _images()
    parameters = {
        "application": "autotagging",
        "confidence_threshold": 0.25,
        "input_resolution": [40, 30],
        "original_sizes": [[400, 300]] * 3,
    }
    body = encode_batch(images, parameters)

    with np.load(io.BytesIO(body), allow_pickle=False) as archive:  # what a bundle sees
        assert sorted(archive.files) == ["images", "parameters"]
        assert archive["parameters"].shape == ()
        assert archive["parameters"].dtype.kind == "U"
    decoded, decoded_parameters = decode_batch(body, "application/x-npz")
    assert decoded.shape == (3, 30, 40, 3)
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, np.stack(images))
    assert decoded_parameters == parameters


def test_json_batch_decodes_and_resizes_to_input_resolution() -> None:
    encoded = []
    for size, color in (((64, 48), (255, 0, 0)), ((32, 32), (0, 0, 255))):
        buffer = io.BytesIO()
        Image.new("RGB", size, color).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    body = json.dumps({"images": encoded, "parameters": {"input_resolution": [20, 10]}})

    images, parameters = decode_batch(body, "application/json; charset=utf-8")

    assert images.shape == (2, 10, 20, 3)
    assert tuple(images[0, 5, 10]) == (255, 0, 0)
    assert tuple(images[1, 5, 10]) == (0, 0, 255)
    assert parameters["original_sizes"] == [[64, 48], [32, 32]]


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "at least one image"),
        ([np.zeros((10, 10, 3), np.float32)], "expected uint8"),
        ([np.zeros((10, 10), np.uint8)], "expected uint8 (H, W, 3)"),
        (
            [np.zeros((10, 10, 3), np.uint8), np.zeros((10, 12, 3), np.uint8)],
            "image 1 is 12x10 but image 0 is 10x10; resize every image",
        ),
    ],
)
def test_encode_batch_refuses_what_a_bundle_cannot_stack(
    images: list[np.ndarray], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        encode_batch(images, {})


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"not an npz", "application/x-npz", "not a readable .npz"),
        (b"{}", "application/json", "a JSON body must be"),
        (b"x", "text/csv", "unsupported content type"),
    ],
)
def test_decode_batch_says_what_is_wrong(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_batch(body, content_type)


def test_application_aliases() -> None:
    assert normalize_application("auto_tagging") == "autotagging"
    with pytest.raises(ValueError, match="unknown application"):
        normalize_application("segmentation")


# -- outputs: the good cases -----------------------------------------------------------------
TAGS = {"boxes": [[1, 2, 30, 40, 0.9, 2], [0, 0, 5, 5, 0.5, 0.0]], "masks": None, "probs": None}


def test_autotagging_outputs_parse_from_bytes_string_or_objects() -> None:
    for raw in (
        json.dumps([TAGS, TAGS]).encode(),
        json.dumps([TAGS, TAGS]),
        json.dumps(json.dumps([TAGS, TAGS])),
        [TAGS, json.dumps(TAGS)],
    ):
        outcomes = validate_outputs("autotagging", raw, 2)
        assert [o.ok for o in outcomes] == [True, True], outcomes
        output = outcomes[1].output
        assert isinstance(output, TagPrediction)
        assert output.boxes[0].class_id == 2
        assert output.boxes[0].confidence == 0.9
        assert output.boxes[1].class_id == 0


def test_autotagging_masks_and_probs() -> None:
    item = {
        "boxes": [[0, 0, 10, 10, 0.8, 1]],
        "masks": [[[0, 0], [10, 0], [10, 10]]],
        "probs": [0.1, 0.9],
    }
    (outcome,) = validate_outputs("auto_tagging", [item], 1, num_classes=2)
    assert isinstance(outcome.output, TagPrediction)
    assert outcome.output.masks == [[(0, 0), (10, 0), (10, 10)]]
    assert outcome.output.probs == [0.1, 0.9]


def test_a_single_object_is_accepted_for_a_batch_of_one() -> None:
    (outcome,) = validate_outputs("embedding", {"embedding": [0.5, 1]}, 1)
    assert isinstance(outcome.output, EmbeddingOutput)
    assert outcome.output.dimension == 2


def test_auto_annotation_outputs() -> None:
    item = {
        "boxes": [[0, 0, 10, 20], [5, 5, 6, 6]],
        "masks": [[[0, 0], [10, 0], [10, 20], [0, 20]], None],
        "logits": [0.7, 0.4],
        "phrases": ["cat", "small dog"],
    }
    (outcome,) = validate_outputs("auto_annotation", [item], 1)
    assert isinstance(outcome.output, AnnotationOutput)
    assert outcome.output.phrases == ["cat", "small dog"]
    assert outcome.output.masks is not None
    assert outcome.output.masks[1] is None
    (no_masks,) = validate_outputs("auto_annotation", [{**item, "masks": None}], 1)
    assert no_masks.ok
    # the templates send [] for a box SAM found no mask for
    (empty_mask,) = validate_outputs("auto_annotation", [{**item, "masks": [[], []]}], 1)
    assert isinstance(empty_mask.output, AnnotationOutput)
    assert empty_mask.output.masks == [[], []]


# -- outputs: each malformed case names the key ----------------------------------------------
@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"masks": None},
            "item 1: 'boxes' is missing (expected a list of [x1, y1, x2, y2, conf, "
            "cls] rows); keys present: 'masks'",
        ),
        ({"boxes": {"a": 1}}, "item 1: 'boxes' is a object; expected a list"),
        (
            {"boxes": [[0, 0, 1, 1, 0.5, 0], [0, 0, 1, 1, 0.5, 0], [1, 2, 3, 4, 0.5]]},
            "item 1: 'boxes'[2] has 5 numbers; expected [x1, y1, x2, y2, conf, cls]",
        ),
        (
            {"boxes": [[0, 0, 1, 1, "0.5", 0]]},
            "item 1: 'boxes'[0][4] is a string; expected a number",
        ),
        ({"boxes": [[0, 0, 1, float("nan"), 0.5, 0]]}, "'boxes'[0][3] is nan; expected a finite"),
        ({"boxes": [[0, 0, 1, 1, 3.0, 0]]}, "'boxes'[0] has confidence 3.0 (5th number)"),
        ({"boxes": [[0, 0, 1, 1, 0.5, 1.5]]}, "'boxes'[0] has class 1.5 (6th number)"),
        ({"boxes": [[0, 0, 1, 1, 0.5, 7]]}, "class 7 but label_list.yaml has 3 labels (0..2)"),
        ({"boxes": [[10, 10, 5, 5, 0.5, 0]]}, "x2 < x1 or y2 < y1; expected corners"),
        ({"boxes": [[0, 0, 1, 1, 0.5, 0]], "masks": []}, "'masks' has 0 entries but 'boxes' has 1"),
        (
            {"boxes": [[0, 0, 1, 1, 0.5, 0]], "masks": [[[0, 0], 1]]},
            "'masks'[0][1] is a number; expected [x, y]",
        ),
        (
            {"boxes": [[0, 0, 1, 1, 0.5, 0]], "masks": [[[0, 0, 1], [1, 1], [0, 1]]]},
            "'masks'[0][0] has 3 numbers; expected [x, y]",
        ),
        ({"boxes": [], "probs": "high"}, "'probs' is a string; expected a list of numbers"),
        ([1, 2], "item 1: expected a JSON object, got a JSON list"),
        ("{nope", "item 1: the output is a string that is not JSON"),
    ],
)
def test_malformed_autotagging_outputs(item: Any, message: str) -> None:
    good = {"boxes": []}
    outcomes = validate_outputs("autotagging", [good, item], 2, num_classes=3)
    assert outcomes[0].ok
    assert not outcomes[1].ok
    assert outcomes[1].output is None
    assert message in (outcomes[1].error or ""), outcomes[1].error


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"boxes": [[0, 0, 1, 1, 0.9]], "logits": [0.9], "phrases": ["a"]},
            "'boxes'[0] has 5 numbers; expected [x1, y1, x2, y2]",
        ),
        ({"boxes": [[0, 0, 1, 1]], "logits": [0.9]}, "'phrases' is missing"),
        (
            {"boxes": [[0, 0, 1, 1]], "logits": [0.9, 0.1], "phrases": ["a"]},
            "'logits' has 2 entries but 'boxes' has 1",
        ),
        ({"boxes": [[0, 0, 1, 1]], "logits": [0.9], "phrases": [3]}, "'phrases'[0] is a number"),
        (
            {"boxes": [[0, 0, 1, 1]], "logits": [0.9], "phrases": ["a"], "masks": [[], []]},
            "'masks' has 2 entries",
        ),
    ],
)
def test_malformed_auto_annotation_outputs(item: dict[str, Any], message: str) -> None:
    (outcome,) = validate_outputs("auto_annotation", [item], 1)
    assert message in (outcome.error or ""), outcome.error


def test_embedding_dimensions_must_agree() -> None:
    raw = [
        {"embedding": [1, 2, 3]},
        {"embedding": [1, 2]},
        {"embedding": [4, 5, 6]},
        {"embedding": []},
        {"vector": [1]},
    ]
    outcomes = validate_outputs("embedding", raw, 5)
    assert [o.ok for o in outcomes] == [True, False, True, False, False]
    assert outcomes[1].error == "item 1: 'embedding' has 2 numbers; the other items have 3"
    assert outcomes[3].error == "item 3: 'embedding' is empty"
    assert outcomes[4].error is not None
    assert "'embedding' is missing" in outcomes[4].error

    declared = validate_outputs("embedding", raw[:3], 3, embedding_dim=2)
    assert [o.ok for o in declared] == [False, True, False]
    assert declared[0].error == "item 0: 'embedding' has 3 numbers; the model version declares 2"

    infinite = validate_outputs("embedding", '[{"embedding": [1, Infinity]}]', 1)
    assert infinite[0].error is not None
    assert "is inf; expected a finite number" in infinite[0].error


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"boxes": []}] * 3, "the model returned 3 outputs for a batch of 4 images"),
        (b"\xff\xfe", "the response is not UTF-8 JSON"),
        ("not json", "the response is not JSON"),
        ({"boxes": []}, "the response is a JSON object; output_fn must return a list"),
        ("42", "the response is a JSON number"),
    ],
)
def test_a_response_that_does_not_match_the_batch_fails_every_item(raw: Any, message: str) -> None:
    outcomes = validate_outputs("autotagging", raw, 4)
    assert len(outcomes) == 4
    assert all(o.error is not None and message in o.error for o in outcomes), outcomes
    assert [o.index for o in outcomes] == [0, 1, 2, 3]
