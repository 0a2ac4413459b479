"""The SDK is a thin client: importing it pulls in none of the engine's heavy dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "sqlalchemy", "celery", "fastapi", "psycopg", "alembic", "boto3", "engine")


def test_importing_the_sdk_imports_no_engine_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import sdk\n"
        "from sdk import Client, MetaLakeError\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
