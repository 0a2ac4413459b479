"""The README's configuration table is the one generated from the settings."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lists_every_setting_as_the_code_defines_it() -> None:
    sys.path.insert(0, str(ROOT))
    from scripts.settings_table import END, START, render

    readme = (ROOT / "README.md").read_text()
    assert START in readme
    assert END in readme
    assert render(readme) == readme, "run: python scripts/settings_table.py --write README.md"
