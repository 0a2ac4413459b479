"""Annotation calls: upload, import (COCO / YOLO), download."""

from __future__ import annotations

from sdk._base import BaseClient


class AnnotationCalls(BaseClient):
    pass
