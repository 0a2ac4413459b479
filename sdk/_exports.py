"""Exports and datasets: `export_collection`, `export_datalake`, `create_dataset_from_*`, `download_dataset`."""

from __future__ import annotations

from sdk._base import BaseClient


class ExportCalls(BaseClient):
    pass
