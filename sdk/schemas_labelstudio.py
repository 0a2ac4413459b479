"""Wire models of the Label Studio bridge: the ML backend protocol Label Studio speaks to `/ml`,
and projects made from collections with their annotations brought back (docs/labelstudio.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdk.schemas import JsonObject, Schema


class _LabelStudioBody(BaseModel):
    """What Label Studio sends: more fields than we read, from version to version."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# -- the ML backend (Label Studio calls these) -------------------------------------------------
class MlHealth(Schema):
    status: Literal["UP"] = "UP"
    model_class: str = "MetaLake"


class MlSetupRequest(_LabelStudioBody):
    project: str | None = Field(default=None, description="`<project id>.<created, Unix time>`")
    label_config: str | None = Field(default=None, alias="schema")
    hostname: str | None = None
    extra_params: JsonObject | None = None


class MlSetupResponse(Schema):
    model_version: str


class MlPredictRequest(_LabelStudioBody):
    tasks: list[JsonObject]
    project: str | None = None
    label_config: str
    params: JsonObject | None = None


class MlPrediction(Schema):
    """One task's prediction: regions in percent of the image, as Label Studio stores them."""

    result: list[JsonObject]
    score: float = 0.0
    model_version: str


class MlPredictResponse(Schema):
    results: list[MlPrediction]


class MlWebhook(_LabelStudioBody):
    """A Label Studio webhook event (ANNOTATION_CREATED, ANNOTATION_UPDATED, ...)."""

    action: str
    project: JsonObject | None = None
    task: JsonObject | None = None
    annotation: JsonObject | None = None


class MlWebhookReport(Schema):
    action: str
    operation_id: str | None = None
    unique_name: str | None = None
    written: int = 0
    replaced: int = 0


# -- projects from collections, and annotations back -------------------------------------------
ShapeType = Literal["rectangle", "polygon"]


class LabelStudioConnection(Schema):
    """Which Label Studio: unset fields fall back to the engine's METALAKE_LABELSTUDIO_URL and
    METALAKE_LABELSTUDIO_TOKEN."""

    labelstudio_url: str | None = None
    labelstudio_token: str | None = Field(default=None, repr=False)


class LabelStudioProjectCreate(LabelStudioConnection):
    project_name: str = Field(min_length=3, max_length=50)
    collection_id: int | None = Field(
        default=None, description="The collection's files; without it, the lake's files."
    )
    content_type: Literal["image"] = Field(
        default="image", description="Without a collection: the lake's files of this type."
    )
    query: str = ""
    filter: JsonObject = Field(default_factory=dict)
    model_name: str | None = Field(
        default=None,
        description="Attach this model's machine labels as predictions (default: every model's).",
    )
    default_shape_type: ShapeType = "rectangle"
    url_seconds: int | None = Field(
        default=None, description="How long the tasks' signed image URLs work."
    )


class LabelStudioProjectPublic(Schema):
    isSuccess: bool = True
    project_id: int
    project_url: str
    task_count: int
    prediction_count: int
    labels: list[str]


class AnnotationDownloadRequest(LabelStudioConnection):
    pass


# -- managing projects ---------------------------------------------------------------------
class LabelStudioProjectSummary(Schema):
    """A Label Studio project as the engine reads it."""

    isSuccess: bool = True
    project_id: int
    name: str
    project_url: str
    task_count: int
    labels: list[str] = Field(description="The labels its labeling config offers, sorted.")
    created_at: str | None = None


class LabelStudioProjectDeleted(Schema):
    isSuccess: bool = True
    project_id: int


class LabelStudioLabelsUpdate(LabelStudioConnection):
    add: list[str] = Field(default_factory=list, description="Labels to offer.")
    remove: list[str] = Field(default_factory=list, description="Labels to take away.")


class LabelStudioLabelGroupAttach(LabelStudioConnection):
    group_id: int = Field(description="A group of the lake's label registry.")


class LabelStudioTasksAdd(LabelStudioConnection):
    """Files to add to a project: a collection's (narrowed by query, filter), or the lake's."""

    collection_id: int | None = None
    content_type: Literal["image"] = "image"
    query: str = ""
    filter: JsonObject = Field(default_factory=dict)
    model_name: str | None = Field(
        default=None,
        description="Attach this model's machine labels as predictions (default: every model's).",
    )
    url_seconds: int | None = Field(
        default=None, description="How long the tasks' signed image URLs work."
    )


class LabelStudioTasksAdded(Schema):
    isSuccess: bool = True
    project_id: int
    task_count: int = Field(description="Tasks added.")
    skipped: int = Field(description="Selected files the project already had a task of.")
    prediction_count: int
    labels_added: list[str] = Field(description="Labels added to the labeling config.")


class LabelStudioPredictionsAttach(LabelStudioConnection):
    operation_ids: list[str] = Field(
        default_factory=list,
        description="Operations (model runs, uploads) whose annotations to attach.",
    )
    job_ids: list[int] = Field(
        default_factory=list,
        description="Jobs (autotagging, auto-annotation) whose machine annotations to attach.",
    )

    @model_validator(mode="after")
    def _names_something(self) -> LabelStudioPredictionsAttach:
        if not self.operation_ids and not self.job_ids:
            raise ValueError(
                "name the annotations to attach: operation_ids (e.g. ['run-1']) and/or "
                "job_ids (e.g. [42])"
            )
        return self


class LabelStudioProjectFiles(Schema):
    """The lake files a project's tasks show (their `metalake_unique_name`)."""

    project_id: int
    unique_names: list[str]


class LabelStudioPredictionsAttached(Schema):
    isSuccess: bool = True
    project_id: int
    task_count: int = Field(description="Tasks that got predictions.")
    prediction_count: int
    labels_added: list[str]
