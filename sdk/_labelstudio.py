"""Label Studio projects from collections and their human annotations back into the lake."""

from __future__ import annotations

from sdk._base import BaseClient


class LabelStudioCalls(BaseClient):
    pass
