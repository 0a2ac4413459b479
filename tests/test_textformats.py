"""Documents from users read within limits (engine/textformats.py), ids in ASCII digits
(engine/ids.py), and error bodies that stay small whatever they quote (engine/api/errors.py).
The API-level cases are in tests/test_bad_input_api.py and tests/test_bad_input_bundles.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.api.errors import error_body
from engine.config import Settings
from engine.errors import DocumentTooLarge, InvalidDocument
from engine.ids import MAX_ID, parse_id
from engine.textformats import MAX_DEPTH, TextLimits, excerpt, load_json, load_yaml, shown
from sdk import Client
from tests.fixtures import imagegen


def _laughs(levels: int) -> str:
    lines = [f"a: &a [{','.join(['lol'] * 10)}]"]
    lines += [
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 10)}]"
        for i in range(levels - 1)
    ]
    return "\n".join(lines) + "\n"


def _refusal(text: str, **limits: Any) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        load_yaml(text, what="data.yaml", limits=TextLimits(**limits))
    return caught.value


# -- YAML ----------------------------------------------------------------------------------------
def test_a_billion_laughs_is_refused_before_it_is_built() -> None:
    began = time.monotonic()
    error = _refusal(_laughs(9))
    assert time.monotonic() - began < 1
    assert error.reason == "aliases"
    assert "data.yaml: its aliases (`*name`) stand for more than 10,000 values" in error.message


def test_aliases_within_the_budget_are_read() -> None:
    assert load_yaml(_laughs(3), what="x")["c"] == [[["lol"] * 10] * 10] * 10  # 1,000 values
    merged = load_yaml("base: &b {size: 640}\ntrain: {<<: *b, split: train}\n", what="x")
    assert merged["train"] == {"size": 640, "split": "train"}
    assert _refusal(_laughs(3), alias_budget=500).reason == "aliases"


def test_an_alias_inside_its_own_container_is_refused() -> None:
    error = _refusal("names: &n [cat, *n]\n")
    assert error.reason == "aliases"
    assert "*n refers to a list or mapping that contains it" in error.message


def test_yaml_nesting_is_capped() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_yaml(ok, what="x") is not None
    for deep in ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "- " + "[" * 50_000 + "\n"):
        error = _refusal(deep)
        assert error.reason == "too_deep"
        assert "nested too deeply: more than 100 levels" in error.message
    # an alias to a deep list, placed deep, is as deep as what it stands for
    chained = "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50 + "\n"
    assert _refusal(chained).reason == "too_deep"


def test_bad_yaml_is_quoted_in_part() -> None:
    error = _refusal("names: [cat, " + "x" * 10_000 + "\n")
    assert error.reason == "syntax"
    assert "not valid YAML at line" in error.message
    assert len(error.message) < 500
    assert _refusal("- !!float cat\n").reason == "tag"


def test_a_document_over_the_size_limit_is_a_413_naming_the_setting() -> None:
    with pytest.raises(DocumentTooLarge) as caught:
        load_yaml("- cat\n" * 100, what="label_list.yaml", limits=TextLimits(max_bytes=100))
    assert caught.value.status_code == 413
    assert "METALAKE_DOCUMENT_MAX_BYTES" in caught.value.message
    with pytest.raises(DocumentTooLarge):
        load_json("[" + "1," * 100 + "1]", what="x", limits=TextLimits(max_bytes=100))


# -- JSON ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "[" * 101 + "]" * 101,  # parsed, then found too deep
        "[" * 3000 + "]" * 3000,  # past pydantic-core's parser limit
        "[" * 3000,  # and unclosed
        '["\\ud800", ' + "[" * 3000 + "]" * 3000 + "]",  # the json module's path
        '["\\ud800", ' + "[" * 150 + "]" * 150 + "]",
    ],
)
def test_json_nesting_is_capped(text: str) -> None:
    with pytest.raises(InvalidDocument) as caught:
        load_json(text, what="The filter")
    assert caught.value.reason == "too_deep"
    assert "The filter is nested too deeply" in caught.value.message


def test_json_is_read_as_the_json_module_reads_it() -> None:
    assert load_json('{"a": [1, 2.5, "\\ud800", null]}', what="x") == {
        "a": [1, 2.5, "\ud800", None]
    }
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH, what="x") is not None
    with pytest.raises(InvalidDocument, match=r"not valid JSON: .*line 1 column 9"):
        load_json('{"a": 1,', what="x")
    with pytest.raises(InvalidDocument) as caught:
        load_json('{"a": "' + "x" * 10_000, what="x")
    assert len(caught.value.message) < 400


def test_a_number_int_cannot_read_is_named() -> None:
    with pytest.raises(InvalidDocument) as caught:
        load_json('{"id": ' + "9" * 5000 + "}", what="The filter")
    assert caught.value.reason == "number_too_long"
    assert "The filter holds a number of more than 4,300 digits" in caught.value.message


def test_excerpts_and_reprs_are_short() -> None:
    assert excerpt("x" * 10) == "x" * 10
    assert excerpt("x" * 1000) == "x" * 200 + "…"
    nested: list[Any] = [["x" * 1000] * 1000] * 1000
    assert len(shown(nested)) < 3000


# -- ids -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "²",
        "٣",
        "\uff11",
        "+1",
        " 1",
        "1 ",
        "1_000",
        "0",
        "-1",
        "1.0",
        "",
        "9" * 5000,
        str(2**63),
        "0x1",
    ],
)
def test_ids_are_ascii_digits_within_bigint(text: str) -> None:
    assert parse_id(text) is None


def test_ids_in_range_are_read() -> None:
    assert parse_id("1") == 1
    assert parse_id("007") == 7
    assert parse_id(str(MAX_ID)) == MAX_ID


# -- error bodies --------------------------------------------------------------------------------
def test_an_error_body_stays_small_whatever_it_quotes() -> None:
    huge: dict[str, Any] = {
        "query": "q" * 1_000_000,
        "names": ["n" * 5000] * 100_000,
        "nested": [[["x" * 900] * 100] * 100] * 100,
        "deep": json.loads("[" * 50 + "]" * 50),
        "k" * 5000: 1,
    }
    body = json.dumps(error_body("invalid_input", "m" * 1_000_000, huge))
    assert len(body) < 16_000
    details = json.loads(body)["error"]["details"]
    assert details["query"] == "q" * 1000 + "…"
    number = error_body("invalid_input", "m", {"version": 10**5000})["error"]["details"]
    assert number["version"] == "(a number of about 5,000 digits)"
    kept = error_body(
        "bundle_invalid",
        "short",
        {"rule": "labels_invalid", "duplicates": [f"c{i}" for i in range(100)]},
    )
    assert kept["error"]["details"]["duplicates"] == [f"c{i}" for i in range(100)]
    assert kept["error"]["message"] == "short"


# -- the setting, through the API ----------------------------------------------------------------
@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"document_max_bytes": 2048})


def test_the_document_size_setting_holds_at_the_api(
    client: Client, api_url: str, admin_key: str, tmp_path: Path
) -> None:
    imagegen.image(tmp_path / "things" / "a.jpg", (64, 48))
    collection_id = client.upload_files_to_collection(tmp_path / "things", "image", "things")
    response = httpx.post(
        f"{api_url}/api/v1/collections/{collection_id}/annotations/import",
        json={
            "format": "yolo",
            "yolo": {
                "labels": {"a.txt": "0 0.5 0.5 0.1 0.1\n"},
                "data_yaml": "names: [cat]\n" + "#" * 3000 + "\n",
            },
        },
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "document_too_large"
    assert "data.yaml is larger than 2,048 bytes (METALAKE_DOCUMENT_MAX_BYTES)" in error["message"]
    response = httpx.post(
        f"{api_url}/api/v1/collections/{collection_id}/annotations/import",
        json={
            "format": "yolo",
            "yolo": {"labels": {"a.txt": "0 0.5 0.5 0.1 0.1\n"}, "data_yaml": "names: [cat]\n"},
        },
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 200, response.text
