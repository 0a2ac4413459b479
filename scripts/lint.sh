#!/usr/bin/env bash
# One lint command: ruff (lint rules and format from pyproject.toml), mypy (strict, engine +
# sdk) and lint-imports (the import rules in .importlinter). Every check runs; the command
# fails if any fails. Run through `make lint` to use .venv's tools.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
run() { echo "+ $*" >&2; "$@" || status=1; }
run ruff check .
run ruff format --check --output-format concise .  # what would change: ruff format --diff FILE
run mypy
run lint-imports
exit "$status"
