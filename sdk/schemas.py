"""Typed envelopes on the wire between the engine and the SDK (pydantic only, no server imports).

The engine's routes declare these as response models; the SDK validates responses into them.
Field names are the engine's; `ItemPublic` also carries the seed SDK's `uniqueName` alias.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

ContentType = Literal["image", "video"]
AnnotationShape = Literal["box", "polygon", "tag", "keypoints"]
AnnotationSource = Literal["raw", "human", "machine"]
AnnotationStatus = Literal["applied", "proposed"]
Scope = Literal["read", "write", "admin"]

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class ErrorDetail(Schema):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(Schema):
    error: ErrorDetail


class Page(Schema, Generic[T]):
    items: list[T]
    total: int
    page_index: int
    page_size: int


class Health(Schema):
    status: str
    version: str
    database: str


# -- collections and ingest --------------------------------------------------------------------
class CollectionCreate(Schema):
    name: str = Field(min_length=1, max_length=255)
    content_type: ContentType


class CollectionPublic(Schema):
    id: int
    name: str
    content_type: ContentType
    created_at: datetime
    file_count: int = 0


class IngestEntry(Schema):
    """One local file to register in place: where it is, and its path relative to the upload root."""

    path: str = Field(min_length=1)
    relative_path: str = Field(min_length=1)


class IngestRequest(Schema):
    """Register files in place: local paths the engine can read, or an `s3://bucket/prefix`."""

    collection_name: str = Field(min_length=1, max_length=255)
    content_type: ContentType
    entries: list[IngestEntry] = Field(default_factory=list, max_length=5000)
    s3_uri: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class IngestFailurePublic(Schema):
    path: str
    reason: str


class IngestReport(Schema):
    collection_id: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[IngestFailurePublic] = Field(default_factory=list)


# -- items ----------------------------------------------------------------------------------------
class TagPublic(Schema):
    name: str
    source: AnnotationSource
    confidence: float | None = None
    model_version_id: int | None = None


class AnnotationPublic(Schema):
    id: int
    label: str
    shape: AnnotationShape
    geometry: dict[str, Any]
    confidence: float | None = None
    source: AnnotationSource
    status: AnnotationStatus = "applied"
    frame_index: int | None = None
    operation_id: str | None = None
    model_version_id: int | None = None
    job_id: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ItemPublic(Schema):
    id: int
    name: str
    unique_name: str = Field(serialization_alias="uniqueName", validation_alias="uniqueName")
    url: str
    content_type: ContentType
    storage_uri: str
    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    uploaded_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    collections: list[str] = Field(default_factory=list)
    tags: list[TagPublic] = Field(default_factory=list)
    annotations: list[AnnotationPublic] = Field(default_factory=list)


class ItemQuery(Schema):
    """A search over the lake: the query language plus the filter object."""

    query: str | None = None
    filter: dict[str, Any] | None = None
    content_type: ContentType | None = None
    collection_id: int | None = None
    page_index: int = Field(default=0, ge=0)
    page_size: int = Field(default=20, ge=1, le=1000)


class MetadataUpdate(Schema):
    """Keys to set on a file's metadata (merged); `null` values remove a key."""

    metadata: dict[str, Any]
