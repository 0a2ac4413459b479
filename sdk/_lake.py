"""Lake calls: upload, item lists, file and collection details."""

from __future__ import annotations

from sdk._base import BaseClient


class LakeCalls(BaseClient):
    pass
