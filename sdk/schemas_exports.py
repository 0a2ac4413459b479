"""Wire models of exports and datasets (docs/exports.md).

Imports nothing of `sdk.schemas`, which imports `ExportParams` from here for the job vocabulary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

Source = Literal["human", "machine"]
YoloTask = Literal["detect", "segment"]
ExportContentType = Literal["image", "video"]
Split = Literal["train", "validation", "test"]
SplitUnit = Literal["auto", "count", "percent"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
SOURCES: tuple[Source, ...] = ("human", "machine")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Selection(_Wire):
    """Which files and which of their annotations an export writes."""

    collection_id: int | None = Field(
        default=None, description="Export this collection; or leave it out and name content_type."
    )
    content_type: ExportContentType | None = Field(
        default=None, description="Export the whole lake's files of this type (image or video)."
    )
    query: str | None = Field(
        default=None, description="The lake's query language (docs/query.md)."
    )
    filter: dict[str, JsonValue] | None = None
    sources: list[Source] = Field(
        default_factory=lambda: list(SOURCES),
        min_length=1,
        description="Which annotations and tags: human, machine or both.",
    )
    include_proposals: bool = Field(
        default=False, description="Also the proposals of preview jobs (status proposed)."
    )

    def _scopes(self) -> list[object]:
        return [self.collection_id, self.content_type]

    @model_validator(mode="after")
    def _one_scope(self) -> _Selection:
        if sum(scope is not None for scope in self._scopes()) != 1:
            raise ValueError(
                "give exactly one of collection_id (one collection), content_type (the whole "
                "lake's images or videos)"
                + (" or dataset_version_id (a dataset version)" if len(self._scopes()) > 2 else "")
            )
        return self


class ExportRequest(_Selection):
    """`POST /exports`: a collection, the lake's files of a type, or a dataset version (whose
    own files, annotations and splits are exported; query, filter and sources then do not
    apply)."""

    dataset_version_id: int | None = Field(
        default=None, description="Export this dataset version's frozen snapshot, split-aware."
    )
    format: str = Field(
        description="coco, yolo, voc, label_studio, metalake or annotated (docs/export-formats.md)."
    )
    include_media: bool = Field(default=True, description="Copy the images into the export.")
    yolo_task: YoloTask = "detect"

    def _scopes(self) -> list[object]:
        return [self.collection_id, self.content_type, self.dataset_version_id]


class ExportParams(ExportRequest):
    """An export job's `jobs.params`: the request as it was accepted."""


class ExportResult(BaseModel):
    """What a finished export job wrote (`GET /exports/{job_id}`)."""

    job_id: int
    format: str
    items: int
    annotations: int
    files: int
    size_bytes: int
    created_at: datetime


class DatasetVersionRequest(_Selection):
    """`POST /datasets` (a new dataset) and `POST /datasets/{id}/versions` (a new version)."""

    dataset_name: str | None = Field(
        default=None, min_length=1, max_length=255, description="A new dataset's name."
    )
    split_info: dict[str, float] = Field(
        description='{"train": n, "validation": n, "test": n}: percentages when they sum to '
        "100 (as LayerNext's), else file counts; split_unit says which when it is not that."
    )
    split_unit: SplitUnit = "auto"
    labels: list[str] = Field(
        default_factory=list, description="Export only these labels; empty: every label."
    )
    export_types: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Formats the version is meant for (recorded; any format can be downloaded).",
    )


class DatasetVersionPublic(BaseModel):
    dataset_id: int
    dataset_name: str
    version_id: int
    version: int
    items: int
    annotations: int
    splits: dict[str, int]
    labels: list[str]
    export_types: list[str]
    created_at: datetime
