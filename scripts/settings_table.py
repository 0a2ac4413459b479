"""Print (or `--write [PATH]`) the configuration table generated from `engine.config.Settings`.

`--write` replaces the table between the settings markers of `docs/configuration.md` (or of
PATH). `tests/test_settings_table.py` fails when that page and the settings differ, so the
documentation cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

START, END = "<!-- settings:start -->", "<!-- settings:end -->"
PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SDK_ROW = (
    "| `METALAKE_URL`, `METALAKE_API_KEY` | unset | SDK and CLI side: the engine to talk to "
    "and the key to send (else the local engine's `client.json`). |"
)


def _default(value: str) -> str:
    if value in ("None", "''"):
        return "unset"
    return "`" + value.strip("'") + "`"


def table() -> str:
    from engine.config import settings_table

    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for env, default, description in settings_table():
        names = " / ".join(f"`{name.strip()}`" for name in env.split("/"))
        lines.append(f"| {names} | {_default(default)} | {description} |")
    lines.append(SDK_ROW)
    return "\n".join(lines)


def render(page: str) -> str:
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    if len(sys.argv) in (2, 3) and sys.argv[1] == "--write":
        path = Path(sys.argv[2]) if len(sys.argv) == 3 else PAGE
        path.write_text(render(path.read_text()))
        return 0
    if len(sys.argv) > 1:
        print("usage: settings_table.py [--write [PATH]]  (PATH: docs/configuration.md)")
        return 2
    print(table())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
