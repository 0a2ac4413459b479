"""One image through a model (`predict`), a lake item drawn (`render_item`), signed URLs (`get_downloadable_url`)."""

from __future__ import annotations

from sdk._base import BaseClient


class PredictCalls(BaseClient):
    pass
