#!/usr/bin/env bash
# Create the project's virtualenv (default .venv) with Python 3.11 and install the engine with
# its dev tools: `scripts/bootstrap_venv.sh [DIR]`. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
python="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"

if [ -z "$python" ]; then
    echo "error: Python 3.11 not found; install it or run: make PYTHON=/path/to/python3.11" >&2
    exit 1
fi
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
    echo "error: $python is Python $version; MetaLake needs 3.11 (make PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # Debian/Ubuntu without python3.11-venv: no ensurepip. virtualenv needs only pip.
        rm -rf "$venv"
        echo "python -m venv is unavailable; using virtualenv instead" >&2
        "$python" -m pip install --user --quiet virtualenv
        "$python" -m virtualenv --quiet "$venv"
    fi
fi

quiet=()
if [ "${CI:-}" = "true" ]; then quiet=(--quiet); fi
"$venv/bin/python" -m pip install "${quiet[@]}" --upgrade pip
# The `models` extra brings torch 2.15 + torchvision 0.29 (a matched pair from the registry)
# and ultralytics: the default templates and the test suite's own models need them.
"$venv/bin/python" -m pip install "${quiet[@]}" -e '.[engine,dev,models]'
echo "$venv is ready: $("$venv/bin/python" --version), metalake at $venv/bin/metalake"
