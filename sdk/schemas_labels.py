"""Wire models of the label registry: labels and named groups of them (docs/layernext.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sdk.schemas import Schema


class LabelAttribute(Schema):
    name: str = Field(min_length=1, max_length=255)
    values: list[str] = Field(default_factory=list)


class LabelCreate(Schema):
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=10_000)
    attributes: list[LabelAttribute] = Field(default_factory=list, max_length=100)


class LabelPublic(Schema):
    id: int
    name: str
    description: str
    attributes: list[LabelAttribute]
    created_at: datetime
    groups: list[str] = Field(default_factory=list, description="The groups holding it.")


class LabelIds(Schema):
    label_ids: list[int] = Field(min_length=1, max_length=10_000)


class LabelGroupCreate(LabelIds):
    name: str = Field(min_length=1, max_length=255)


class LabelGroupPublic(Schema):
    id: int
    name: str
    created_at: datetime
    labels: list[str] = Field(description="Names of its labels, sorted.")
    label_ids: list[int]
