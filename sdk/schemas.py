"""Typed envelopes on the wire between the engine and the SDK (pydantic only, no server imports).

The engine's routes declare these as response models; the SDK validates responses into them.
Field names are the engine's; `ItemPublic` also carries the seed SDK's `uniqueName` alias.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sdk.schemas_exports import ExportParams

# The job vocabulary, re-exported: `from sdk.schemas import JobStatus` keeps working.
from sdk.vocabulary import APPLICATION_SPELLINGS as APPLICATION_SPELLINGS
from sdk.vocabulary import FINISHED_JOB_STATUSES as FINISHED_JOB_STATUSES
from sdk.vocabulary import Application as Application
from sdk.vocabulary import ItemStatus as ItemStatus
from sdk.vocabulary import JobKind as JobKind
from sdk.vocabulary import JobStatus as JobStatus
from sdk.vocabulary import Platform as Platform
from sdk.vocabulary import PlatformChoice as PlatformChoice

ContentType = Literal["image", "video"]
AnnotationShape = Literal["box", "polygon", "tag", "keypoints"]
AnnotationSource = Literal["raw", "human", "machine"]
AnnotationStatus = Literal["applied", "proposed"]
Scope = Literal["read", "write", "admin"]

T = TypeVar("T")
# A JSON document's object: what metadata, geometry, filters and error details are.
JsonObject = dict[str, JsonValue]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class ErrorDetail(Schema):
    code: str
    message: str
    details: JsonObject = Field(default_factory=dict)


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
    """A local file to register in place: where it is, and its path relative to the upload root."""

    path: str = Field(min_length=1)
    relative_path: str = Field(min_length=1)


class IngestRequest(Schema):
    """Register files in place: local paths the engine can read, or an `s3://bucket/prefix`."""

    collection_name: str = Field(min_length=1, max_length=255)
    content_type: ContentType
    entries: list[IngestEntry] = Field(default_factory=list, max_length=5000)
    s3_uri: str | None = None
    metadata: JsonObject = Field(default_factory=dict)


class IngestFailurePublic(Schema):
    path: str
    reason: str


class IngestReport(Schema):
    collection_id: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[IngestFailurePublic] = Field(default_factory=list)


IngestJobStatus = Literal["queued", "running", "succeeded", "failed"]


class IngestJobPublic(Schema):
    """A background ingest of an S3 prefix holding more objects than one request lists
    (POST /collections/ingest answers 202 with it); GET /collections/ingest-jobs/{id} follows
    it. `report` holds the totals so far (its `failed` list keeps the first 1,000)."""

    id: str
    status: IngestJobStatus
    s3_uri: str
    listed: int = 0
    done: int = 0
    report: IngestReport
    error: str | None = None


class IngestFailureRecord(IngestFailurePublic):
    """A recorded ingest failure of a collection (`GET /collections/{id}/failures`)."""

    created_at: datetime


class StorageInfo(Schema):
    """How this engine takes files: in place (paths it can read) or copied into managed storage."""

    managed: bool
    ingest_batch_size: int = 200
    image_extensions: list[str] = Field(default_factory=list)
    video_extensions: list[str] = Field(default_factory=list)


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
    geometry: JsonObject
    confidence: float | None = None
    source: AnnotationSource
    status: AnnotationStatus = "applied"
    frame_index: int | None = None
    operation_id: str | None = None
    model_version_id: int | None = None
    job_id: int | None = None
    metadata: JsonObject = Field(default_factory=dict)


class AnnotationCreate(Schema):
    """One annotation to add to a file. Geometry is in pixels of the original image:
    box `{"x1", "y1", "x2", "y2"}` (x1 < x2, y1 < y2, inside the image), polygon
    `{"points": [[x, y], ...]}` (>= 3 points), keypoints `{"points": [[x, y, v], ...]}`, tag `{}`.
    The engine checks these rules and answers 400 naming the annotation's index and field."""

    label: str = Field(description="Non-empty, at most 255 characters.")
    shape: AnnotationShape = "box"
    geometry: JsonObject = Field(default_factory=dict)
    confidence: float | None = Field(default=None, description="0..1 when given.")
    source: Literal["human", "machine"] = "human"
    status: AnnotationStatus = "applied"
    frame_index: int | None = Field(default=None, ge=0)
    metadata: JsonObject = Field(default_factory=dict)


class TagCreate(Schema):
    """A human tag on a file (adding an existing one changes nothing)."""

    name: str = Field(min_length=1, max_length=255)


AnnotationShapeType = Literal["rectangle", "box", "polygon", "mixed"]


class AnnotationUploadRequest(Schema):
    """`upload_annotations_for_folder`: the MetaLake annotation JSON plus how to read it
    (format: docs/annotations.md)."""

    operation_unique_id: str = Field(min_length=1, max_length=255)
    annotation_shape_type: AnnotationShapeType
    is_normalized: bool = False
    is_model_run: bool = False
    data: JsonValue = Field(
        description='The file\'s content: {"images": [{"image", "annotations"}]}.'
    )


class YoloLabels(Schema):
    """A YOLO label folder as text: label files by relative path, and where class names are."""

    labels: dict[str, str] = Field(description="Relative path of each `.txt` -> its content.")
    names: list[str] | None = None
    data_yaml: str | None = Field(default=None, description="Content of data.yaml, if any.")
    classes_txt: str | None = Field(default=None, description="classes.txt / *.names content.")


class AnnotationImportRequest(Schema):
    """`import_annotations`: a COCO document, a YOLO label folder, Pascal VOC XML documents or
    Label Studio tasks, sent as content."""

    format: Literal["coco", "yolo", "voc", "label_studio"]
    annotation_type: Literal["human", "machine"] = Field(
        default="human",
        description="Source of the imported annotations; label_studio takes it from the "
        "document (annotations human, predictions machine).",
    )
    operation_id: str | None = Field(
        default=None,
        max_length=255,
        description="Defaults to `import:<format>:<sha256 of the content>`: re-importing the "
        "same content replaces instead of duplicating.",
    )
    coco: JsonValue = None
    yolo: YoloLabels | None = None
    voc: dict[str, str] | None = Field(
        default=None, description="Relative path of each VOC `.xml` document -> its content."
    )
    label_studio: JsonValue = Field(
        default=None, description="The tasks list of a Label Studio JSON export."
    )


class AnnotationUploadReport(Schema):
    operation_id: str
    written: int = Field(description="Annotations stored by this call.")
    replaced: int = Field(description="Earlier annotations of the same operation removed.")
    matched_images: int
    unknown_images: list[str] = Field(default_factory=list)
    ambiguous_images: list[str] = Field(default_factory=list)


class ExportedAnnotation(Schema):
    """One annotation in the MetaLake JSON (pixels; `bbox` is [x, y, width, height])."""

    label: str
    bbox: list[float] | None = None
    polygon: list[list[float]] | None = None
    keypoints: list[list[float]] | None = None
    confidence: float | None = None
    source: AnnotationSource
    status: AnnotationStatus = Field(
        default="applied",
        description="`proposed`: a preview job's proposal, exported only when asked for.",
    )
    metadata: JsonObject = Field(default_factory=dict)
    frame_index: int | None = None
    model_version_id: int | None = None
    operation_id: str | None = None


class ExportedImage(Schema):
    image: str = Field(
        description="Name to upload it back with (unique name minus `<collection>_`)."
    )
    unique_name: str
    file_id: int
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    annotations: list[ExportedAnnotation] = Field(default_factory=list)


class AnnotationExportPage(Schema):
    collection_id: int
    collection_name: str
    images: list[ExportedImage]
    total: int
    page_index: int
    page_size: int


class ItemPublic(Schema):
    id: int
    name: str
    unique_name: str = Field(serialization_alias="uniqueName", validation_alias="uniqueName")
    url: str
    content_type: ContentType
    # Where the engine reads the bytes (a path on its disk, a bucket key); shown to write and
    # admin keys only, None for read keys, which get the bytes through `url`.
    storage_uri: str | None = None
    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    uploaded_at: datetime
    metadata: JsonObject = Field(default_factory=dict)
    collections: list[str] = Field(default_factory=list)
    tags: list[TagPublic] = Field(default_factory=list)
    annotations: list[AnnotationPublic] = Field(default_factory=list)


SortField = Literal["date_created", "date_modified", "name", "size"]
SortOrder = Literal["ASC", "DESC"]


class ItemQuery(Schema):
    """A search over the lake: the query language plus the filter object."""

    query: str | None = None
    filter: JsonObject | None = None
    content_type: ContentType | None = None
    collection_id: int | None = None
    page_index: int = Field(default=0, ge=0)
    page_size: int = Field(default=20, ge=1, le=1000)
    sort_by: SortField | None = Field(
        default=None,
        description="Order of the files (default: registration order). `date_created` and "
        "`date_modified` are when the file was registered, `name` its unique name, `size` "
        "its size in bytes.",
    )
    sort_order: SortOrder = "ASC"


class MetadataUpdate(Schema):
    """Keys to set on a file's metadata (merged); `null` values remove a key."""

    metadata: JsonObject


# -- model registry -------------------------------------------------------------------------------
class BundleFile(Schema):
    """One file of a registered bundle (its manifest)."""

    path: str
    size: int


class ModelVersionSummary(Schema):
    version: int
    sha256: str
    size_bytes: int
    created_at: datetime


class ModelVersionPublic(Schema):
    """One immutable version of a registered model; `reference` (`name@N`) names it in jobs."""

    name: str
    application: Application
    version: int
    reference: str
    sha256: str
    size_bytes: int
    bundle_uri: str
    label_list: list[str] | None = None
    embedding_dim: int | None = Field(default=None, description="Null: measured on first use.")
    weights_file: str | None = None
    files: list[BundleFile] = Field(default_factory=list)
    created_at: datetime


class ModelPublic(Schema):
    """A registered model and its versions (oldest first)."""

    id: int
    name: str
    application: Application
    is_system_default: bool
    # Installed by the engine (`install-defaults`): deleting it needs force.
    is_system: bool = False
    created_at: datetime
    latest_version: int
    versions: list[ModelVersionSummary] = Field(default_factory=list)


class ModelDetails(ModelPublic):
    """`GET /models/{name}`: the model plus one version in full (the latest, or `name@N`'s)."""

    version: ModelVersionPublic


# -- analysis jobs (section 7 of the SDK manual) -------------------------------------------------
MAX_JOB_WAIT = 60.0  # seconds GET /jobs/{id}?wait= may hold an answer (`wait_for_job`)


class PromptEntry(Schema):
    """One auto-annotation prompt: `description` is what the model is prompted with, `label`
    what the annotations are called."""

    label: str
    description: str = ""

    @model_validator(mode="after")
    def _description_defaults_to_label(self) -> PromptEntry:
        if not self.description.strip():
            self.description = self.label
        return self


# A refused job parameter is a pydantic error of one of these types, so the engine answers
# 400 with that code (engine/api/errors.py) and the SDK raises BadRequest (`input_error`).
INPUT_ERROR_CODES = frozenset({"invalid_input", "unknown_platform"})
MAX_RESOLUTION = 8192
Side = Annotated[int, Field(strict=True, ge=1, le=MAX_RESOLUTION)]
Resolution = tuple[Side, Side]
Threshold = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
AnnotationType = Literal["polygon", "box"]
# What each job parameter must be, said the way a user can act on: {value} is what was sent.
_RULES: dict[str, tuple[str, str]] = {
    "inference_platform": (
        "unknown_platform",
        "Unknown inference platform {value}: use 'local', 'aws' or "
        "'use_env' (METALAKE_INFERENCE_PLATFORM).",
    ),
    "input_resolution": (
        "invalid_input",
        "input_resolution must be two positive integers (width, height) up "
        f"to {MAX_RESOLUTION}, e.g. (480, 480); got {{value}}.",
    ),
    "confidence_threshold": (
        "invalid_input",
        "confidence_threshold must be a number between 0 and 1; got {value}.",
    ),
    "annotation_type": (
        "invalid_input",
        "annotation_type must be 'polygon' or 'box'; got {value}.",
    ),
    "content_type": ("invalid_input", "content_type must be 'image' or 'video'; got {value}."),
}


def input_error(errors: list[Any]) -> tuple[str, str, dict[str, Any]] | None:
    """(code, message, details) of the first error when every one of `errors` (pydantic's
    `.errors()`) refuses a job parameter by its rule; None when some are of another kind."""
    if not errors or any(error.get("type") not in INPUT_ERROR_CODES for error in errors):
        return None
    first = errors[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return (
        first["type"],
        first["msg"],
        {"field": field, "value": (first.get("ctx") or {}).get("value")},
    )


class _JobSelection(Schema):
    """Which files a job runs over: a collection, or the whole lake of one content type, then
    narrowed by the lake's query and filter. Validated by the engine (400s say why)."""

    collection_id: int | str | None = None
    content_type: ContentType | None = Field(
        default=None, description="Required without collection_id."
    )
    model_id: str | None = "default"
    query: str | None = None
    filter: dict[str, JsonValue] | None = None
    inference_platform: PlatformChoice = Field(
        default=PlatformChoice.USE_ENV, description="Any case; null means use_env."
    )

    @field_validator(*_RULES, mode="wrap", check_fields=False)
    @classmethod
    def _by_rule(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """The field's own type and constraints, refused with its rule's message; null means
        the default (the seed SDK sends it)."""
        name = info.field_name or ""
        if value is None and name != "content_type":
            return cls.model_fields[name].get_default(call_default_factory=True)
        given = value
        if name == "inference_platform" and isinstance(value, str):
            value = value.strip().lower()
        try:
            return handler(value)
        except ValidationError as exc:
            code, message = _RULES[name]
            raise PydanticCustomError(code, message, {"value": repr(given)}) from exc


class AutotagRequest(_JobSelection):
    input_resolution: Resolution = (300, 300)
    confidence_threshold: Threshold = 0.5


class AutoAnnotateRequest(_JobSelection):
    prompt: list[PromptEntry | str] | None = Field(
        default=None, description="None: the model's own label list."
    )
    annotation_type: AnnotationType = "polygon"
    confidence_threshold: Threshold = 0.5
    input_resolution: Resolution = (640, 640)
    preview: bool = False


class EmbedRequest(_JobSelection):
    input_resolution: Resolution = (224, 224)


class _Params(Schema):
    """What a job runs with, as the engine stored it in `jobs.params` (resolved: no defaults
    left to apply); the worker reads it back as this model."""

    model_config = ConfigDict(extra="forbid")


class SelectionParams(_Params):
    query: str | None
    filter: dict[str, JsonValue] | None
    content_type: ContentType
    model_reference: str = Field(description="The model as the request named it.")
    input_resolution: Resolution


class AutotagParams(SelectionParams):
    confidence_threshold: Threshold


class AutoAnnotateParams(SelectionParams):
    confidence_threshold: Threshold
    prompt: list[PromptEntry] = Field(min_length=1)
    annotation_type: AnnotationType
    preview: bool


class EmbedParams(SelectionParams):
    pass


class EmbeddingImportParams(_Params):
    model_name: str
    space: str


InferenceParams = AutotagParams | AutoAnnotateParams | EmbedParams  # jobs that run a model
JobParams = InferenceParams | EmbeddingImportParams | ExportParams
PARAMS_BY_KIND: dict[JobKind, type[JobParams]] = {
    JobKind.AUTOTAGGING: AutotagParams,
    JobKind.AUTO_ANNOTATION: AutoAnnotateParams,
    JobKind.EMBEDDING: EmbedParams,
    JobKind.EMBEDDING_IMPORT: EmbeddingImportParams,
    JobKind.EXPORT: ExportParams,
}


class JobSubmitted(Schema):
    """What an analysis call returns at once; follow it with `get_job` / `wait_for_job`."""

    job_id: int
    status: JobStatus
    total: int


class JobItemError(Schema):
    unique_name: str
    error: str


class JobPublic(Schema):
    job_id: int
    kind: JobKind
    status: JobStatus
    platform: Platform
    model: str | None = Field(default=None, description="`name@N` of the model version run.")
    collection_id: int | None = None
    params: JobParams | None = Field(
        description="What the job runs with; null when the stored params cannot be read as "
        "this engine's (written by another version)."
    )
    total: int
    done: int
    failed: int
    cancel_requested: bool = False
    error: str | None = None
    errors: list[JobItemError] = Field(
        default_factory=list, description="Failed items (the first 100) and why."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What to know about how the job ran, e.g. that its model code was not "
        "sandboxed and why.",
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ProposalDecision(Schema):
    """Accept or reject a preview job's proposed annotations: all of them, or those of the
    named files."""

    unique_names: list[str] | None = None


class ProposalReport(Schema):
    job_id: int
    annotations: int


# -- embeddings and similarity search ----------------------------------------------------------
# LayerNext 2.3.4's insert_image_embeddings_batch refuses more than 100 entries; 100 vectors of
# 4,000 dimensions are under 10 MB of JSON, within METALAKE_REQUEST_MAX_BYTES (16 MiB).
MAX_EMBEDDING_BATCH = 100


def _unique_name_field() -> Any:
    return Field(
        validation_alias=AliasChoices("uniqueName", "unique_name"), serialization_alias="uniqueName"
    )


class EmbeddingEntry(Schema):
    """One vector for one file, as the seed SDK writes it: `{"uniqueName", "embeddings"}`."""

    unique_name: str = _unique_name_field()
    embeddings: list[float]


class EmbeddingBatch(Schema):
    """`insert_image_embeddings_batch(embedding_list, model_name, vector_dimension, session_id)`:
    at most 100 entries; calls with the same non-empty `session_id` form one job."""

    embedding_list: list[EmbeddingEntry]
    model_name: str = Field(min_length=1, max_length=255)
    vector_dimension: list[int] = Field(min_length=1)
    session_id: str = Field(default="", max_length=255)


class EmbeddingBatchResult(Schema):
    job_id: int
    session_id: str | None = None
    space: str
    dimension: int
    written: int
    # Entries received so far by the job (all batches of the session).
    total: int


class EmbeddingVectorsRequest(Schema):
    unique_names: list[str] = Field(min_length=1, max_length=1000)
    model_name: str = Field(min_length=1, max_length=255)


class EmbeddingVector(Schema):
    """A file's vector in a space; `embeddings` is null when the file has none there."""

    unique_name: str = _unique_name_field()
    embeddings: list[float] | None = None


class EmbeddingVectors(Schema):
    space: str
    dimension: int
    items: list[EmbeddingVector]


class SimilarityQuery(Schema):
    """Nearest neighbours of a file's vector (`unique_name`) or of a `vector`, by cosine
    similarity, optionally among the files of a collection and/or matching a query + filter."""

    unique_name: str | None = None
    vector: list[float] | None = None
    model_name: str = Field(default="default", min_length=1, max_length=255)
    k: int = Field(default=10, ge=1, le=1000)
    collection_id: int | None = None
    query: str | None = None
    filter: JsonObject | None = None


class SimilarItem(Schema):
    unique_name: str
    # 1 - cosine distance, computed at full precision.
    score: float


class EmbeddingSpaceInfo(Schema):
    """An embedding space and the state of its HNSW index."""

    name: str
    dimension: int
    vectors: int
    # none: not built yet (a worker builds it once writes go quiet; searches scan exactly);
    # building / rebuilding: a bulk build runs now; ready: searches use it.
    index: Literal["none", "building", "rebuilding", "ready"]
    indexed_vectors: int  # what the last bulk build covered (later vectors were added one by one)
    index_built_at: datetime | None = None
    index_build_seconds: float | None = None  # how long the last bulk build took


class SimilarItems(Schema):
    space: str
    # How the neighbours were found: the HNSW index, the index scanned iteratively under a
    # filter, or an exact scan of the (small) filtered set.
    method: Literal["index", "iterative_index", "exact"]
    items: list[SimilarItem]
