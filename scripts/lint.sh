#!/usr/bin/env bash
# One lint command: ruff (lint rules from pyproject.toml) and mypy (strict, engine + sdk).
# LINT_FORMAT=1 also checks `ruff format`. Run through `make lint` to use .venv's tools.
set -euo pipefail
cd "$(dirname "$0")/.."
set -x
ruff check .
if [ "${LINT_FORMAT:-0}" = "1" ]; then ruff format --check .; fi
mypy
