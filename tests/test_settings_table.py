"""docs/configuration.md's table is the one generated from the settings."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_page_lists_every_setting_as_the_code_defines_it() -> None:
    sys.path.insert(0, str(ROOT))
    from scripts.settings_table import END, START, render

    page = (ROOT / "docs" / "configuration.md").read_text()
    assert START in page
    assert END in page
    assert render(page) == page, "run: python scripts/settings_table.py --write"
