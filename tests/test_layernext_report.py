"""docs/layernext.md's table is the one generated from `LayerNextClient` and the report's
STATUS, and the statuses are true: exactly the calls marked "not yet" raise NotSupportedYet,
before sending anything."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

from sdk import LayerNextClient, NotSupportedYet
from sdk.errors import EngineUnreachable, MetaLakeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.layernext_report import END, NOT_YET, START, STATUS, render  # noqa: E402

# Nothing listens here: a call that would send a request fails with EngineUnreachable.
NOWHERE = "http://127.0.0.1:9"


def _arguments(name: str) -> list[object]:
    """Plausible positional arguments for each required parameter of the call."""
    values = {
        "collection_id": "1",
        "project_id": "1",
        "version_id": "1",
        "job_id": "1",
        "content_type": "image",
        "item_type": "image",
        "collection_type": "image",
        "path": "/nonexistent",
        "split_info": {"train": 100},
        "embedding_list": [{"uniqueName": "a.jpg", "embeddings": [1.0]}],
        "vector_dimension": [1],
        "unique_names": ["a.jpg"],
        "project_id_list": ["1"],
    }
    signature = inspect.signature(getattr(LayerNextClient, name))
    return [
        values.get(p.name, "x")
        for p in signature.parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]


def test_the_page_is_current() -> None:
    page = (ROOT / "docs" / "layernext.md").read_text()
    assert START in page
    assert END in page
    assert render(page) == page, "run: python scripts/layernext_report.py --write"


@pytest.mark.parametrize("name", sorted(STATUS))
def test_the_status_is_true(name: str) -> None:
    client = LayerNextClient("mlk_x", "", NOWHERE)
    call = getattr(client, name)
    if STATUS[name][0] == NOT_YET:
        with pytest.raises(NotSupportedYet, match="not supported by this engine yet") as caught:
            call(*_arguments(name))
        assert len(str(caught.value)) > 60  # it says what to use instead
        return
    try:
        call(*_arguments(name))
    except NotSupportedYet:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{name} is marked {STATUS[name][0]!r} but raises NotSupportedYet")
    except (EngineUnreachable, MetaLakeError, OSError, ValueError):
        pass  # it went on to do the work (and found no engine, or a bad dummy argument)


def test_the_constructor_finds_the_engine_key_among_key_and_secret() -> None:
    assert LayerNextClient("mlk_a", "", NOWHERE).client.api_key == "mlk_a"
    assert LayerNextClient("layernext-key", "mlk_b", NOWHERE).client.api_key == "mlk_b"
    assert LayerNextClient("mlk_a", "layernext-secret", NOWHERE).client.api_key == "mlk_a"
    client = LayerNextClient("mlk_a", "", NOWHERE + "/")
    assert (client.layernext_url, client.client.url) == (NOWHERE, NOWHERE)
