"""Job submission: the checks an analysis request passes before its job row exists.

The request models (`AutotagRequest`, ... in sdk/schemas.py) check each parameter's type and
range; here is what needs the database or the settings: the collection, the model, the
platform's configuration and request size limit, the prompt. Every refusal is an
`InvalidInput` (400) or a `NotFound` (404) naming what to fix; a request that passes becomes
the job's typed params (`AutotagParams`, ...), stored as JSON and read back by the worker as
the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, cast

from pydantic import JsonValue
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import ModelVersion
from engine.errors import CollectionNotFound, InvalidInput
from engine.hosting.platforms.factory import platform_type
from engine.jobs.planning import selected_files
from engine.lake.collections import get_collection
from engine.query import file_conditions
from engine.registry.store import resolve_version
from sdk.schemas import (
    AutoAnnotateParams,
    AutoAnnotateRequest,
    AutotagParams,
    AutotagRequest,
    ContentType,
    EmbedParams,
    EmbedRequest,
    InferenceParams,
    PromptEntry,
    Resolution,
)
from sdk.vocabulary import JobKind, Platform, PlatformChoice

JobRequest = AutotagRequest | AutoAnnotateRequest | EmbedRequest


@dataclass(frozen=True)
class ValidatedJob:
    """A request that passed validation: everything the job row needs."""

    kind: JobKind
    platform: Platform
    version: ModelVersion
    collection_id: int | None
    params: InferenceParams
    # The files the job selects now, as conditions on `File`: the query and filter parsed and
    # compiled once, here, for the check and the count (the worker compiles the stored params
    # again, once, when it plans the job).
    selection: list[ColumnElement[bool]]


class _Selection(TypedDict):
    """The params every model-running job has: which files, which model, at what size."""

    query: str | None
    filter: dict[str, JsonValue] | None
    content_type: ContentType
    model_reference: str
    input_resolution: Resolution


@dataclass(frozen=True)
class _Checked:
    platform: Platform
    version: ModelVersion
    collection_id: int | None
    params: _Selection
    conditions: list[ColumnElement[bool]]

    def job(self, kind: JobKind, params: InferenceParams) -> ValidatedJob:
        return ValidatedJob(
            kind, self.platform, self.version, self.collection_id, params, self.conditions
        )


def platform_for(choice: PlatformChoice, settings: Settings) -> Platform:
    """The platform a request asks for; `use_env` means METALAKE_INFERENCE_PLATFORM. `aws`
    without its METALAKE_SAGEMAKER_* settings is refused here (PlatformNotConfigured, 400),
    before a job exists, rather than failing every item in the worker."""
    name = settings.inference_platform if choice == PlatformChoice.USE_ENV else choice
    platform = Platform(name)
    platform_type(platform).check_settings(settings)
    return platform


def _files(
    session: Session, request: JobRequest
) -> tuple[list[ColumnElement[bool]], int | None, ContentType]:
    """(conditions, collection id, content type) of the files the job selects."""
    conditions = file_conditions(request.query, request.filter)  # InvalidQuery / InvalidFilter
    collection_id, content_type = _population(session, request)
    return selected_files(conditions, content_type, collection_id), collection_id, content_type


def _population(session: Session, request: JobRequest) -> tuple[int | None, ContentType]:
    """(collection id, content type): a collection's, or the lake's of one content type."""
    if request.collection_id is not None:
        raw = str(request.collection_id).strip()
        if not raw.isdigit():
            raise CollectionNotFound(
                f"No collection has id {request.collection_id!r}; "
                "collection ids are numbers (see list_collections).",
                collection_id=request.collection_id,
            )
        collection = get_collection(session=session, collection_id=int(raw))
        return collection.id, cast(ContentType, collection.content_type)
    if request.content_type is None:
        raise InvalidInput(
            "content_type must be 'image' or 'video' when no collection_id is given; got None.",
            field="content_type",
        )
    return None, request.content_type


def _check(session: Session, settings: Settings, kind: JobKind, request: JobRequest) -> _Checked:
    platform = platform_for(request.inference_platform, settings)
    conditions, collection_id, content_type = _files(session, request)
    version = resolve_version(session, request.model_id, kind)
    width, height = request.input_resolution
    platform_type(platform).check_request(settings, width, height)
    return _Checked(
        platform,
        version,
        collection_id,
        _Selection(
            query=request.query,
            filter=request.filter,
            content_type=content_type,
            model_reference=request.model_id or "default",
            input_resolution=request.input_resolution,
        ),
        conditions,
    )


def validate_autotag(session: Session, settings: Settings, request: AutotagRequest) -> ValidatedJob:
    kind = JobKind.AUTOTAGGING
    checked = _check(session, settings, kind, request)
    return checked.job(
        kind, AutotagParams(**checked.params, confidence_threshold=request.confidence_threshold)
    )


def validate_embed(session: Session, settings: Settings, request: EmbedRequest) -> ValidatedJob:
    kind = JobKind.EMBEDDING
    checked = _check(session, settings, kind, request)
    return checked.job(kind, EmbedParams(**checked.params))


def prompts(value: list[PromptEntry | str] | None, labels: list[str] | None) -> list[PromptEntry]:
    """The prompt entries, stripped: plain strings mean label = description; no prompt means
    the model's own label list."""
    entries: list[PromptEntry] = []
    for index, entry in enumerate(value or []):
        if isinstance(entry, str):
            entry = PromptEntry(label=entry, description=entry)
        label, description = entry.label.strip(), entry.description.strip()
        if not label or not description:
            raise InvalidInput(
                f"prompt[{index}] needs a non-empty label and description.", index=index
            )
        entries.append(PromptEntry(label=label, description=description))
    if not entries and labels:
        entries = [PromptEntry(label=name, description=name) for name in labels]
    if not entries:
        raise InvalidInput(
            "Say what to annotate: prompt=[{'label': 'bird', 'description': "
            "'a small bird'}, ...] or a list of strings."
        )
    return entries


def validate_auto_annotate(
    session: Session, settings: Settings, request: AutoAnnotateRequest
) -> ValidatedJob:
    kind = JobKind.AUTO_ANNOTATION
    checked = _check(session, settings, kind, request)
    return checked.job(
        kind,
        AutoAnnotateParams(
            **checked.params,
            confidence_threshold=request.confidence_threshold,
            prompt=prompts(request.prompt, checked.version.label_list),
            annotation_type=request.annotation_type,
            preview=request.preview,
        ),
    )
