"""Print (or `--write README.md`) the configuration table generated from `engine.config.Settings`.

`tests/test_readme.py` fails when the README's table and the settings differ, so the README
cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

START, END = "<!-- settings:start -->", "<!-- settings:end -->"
SDK_ROW = ("| `METALAKE_URL`, `METALAKE_API_KEY` | unset | SDK and CLI side: the engine to talk to "
           "and the key to send (else the local engine's `client.json`). |")


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


def render(readme: str) -> str:
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        path.write_text(render(path.read_text()))
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
