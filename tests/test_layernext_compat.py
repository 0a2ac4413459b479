"""`sdk.LayerNextClient` has every public call of LayerNext's published `LayerNextClient`
(package `layernext` 2.3.4) with the same name, positional parameters, keyword names and
defaults. The package's source is downloaded once with `pip download` into the fixture cache
and read with `ast`: nothing of it is installed or imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.fixtures.models import cache_root

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.layernext_report import (  # noqa: E402
    STATUS,
    VERSION,
    Call,
    our_call,
    package_calls,
    package_source,
)


@pytest.fixture(scope="module")
def theirs() -> list[Call]:
    return package_calls(package_source(cache_root()))


def test_the_package_is_the_one_measured(theirs: list[Call]) -> None:
    assert VERSION == "2.3.4"
    assert len(theirs) == 70
    assert len({c.name for c in theirs}) == 70


def test_every_layernext_call_is_here_with_its_parameters(theirs: list[Call]) -> None:
    missing = [c.name for c in theirs if our_call(c.name) is None]
    assert not missing, f"calls of LayerNextClient {VERSION} missing from ours: {missing}"
    different = {
        c.name: {"layernext": c, "ours": our_call(c.name)} for c in theirs if our_call(c.name) != c
    }
    assert not different, f"parameters differ (names, order, defaults): {different}"


def test_the_report_covers_exactly_the_package_calls(theirs: list[Call]) -> None:
    assert sorted(STATUS) == sorted(c.name for c in theirs)


def test_a_changed_signature_is_caught() -> None:
    source = (
        "class LayerNextClient:\n"
        "    def get_item_list_from_datalake(self, item_type, query='', filter={}, "
        "page_index=0, page_size=50, sort_order={}):\n        pass\n"
    )
    (call,) = package_calls(source)
    assert our_call(call.name) != call  # page_size default differs
    assert our_call("no_such_call") is None
