"""Validation of analysis requests: what the API checks before a job row exists.

Every refusal is an `InvalidInput` (400) or a `NotFound` (404) naming what to fix; a request
that passes becomes the job's `params`, which the worker reads back without re-validating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db.models import CONTENT_TYPES, ModelVersion
from engine.errors import (
    CollectionNotFound,
    InvalidInput,
    UnknownPlatform,
)
from engine.hosting.platforms.factory import platform_type
from engine.lake.collections import get_collection
from engine.query import file_conditions
from engine.registry.store import resolve_version
from sdk.schemas import AutoAnnotateRequest, AutotagRequest, EmbedRequest, PromptEntry

PLATFORMS = ("local", "aws")
USE_ENV = "use_env"
ANNOTATION_TYPES = ("polygon", "box")
DEFAULT_RESOLUTION = {"autotagging": (300, 300), "embedding": (224, 224),
                      "auto_annotation": (640, 640)}


@dataclass
class ValidatedJob:
    """A request that passed validation: everything the job row needs."""

    kind: str
    platform: str
    version: ModelVersion
    collection_id: int | None
    params: dict[str, Any] = field(default_factory=dict)


def platform_for(value: str | None, settings: Settings) -> str:
    """`local` | `aws`; `use_env` (or nothing) means METALAKE_INFERENCE_PLATFORM. `aws` without
    its METALAKE_SAGEMAKER_* settings is refused here (PlatformNotConfigured, 400), before a
    job exists, rather than failing every item in the worker."""
    name = (value or USE_ENV).strip().lower()
    if name == USE_ENV:
        name = settings.inference_platform
    elif name not in PLATFORMS:
        raise UnknownPlatform(f"Unknown inference platform {value!r}: use 'local', 'aws' or "
                              "'use_env' (METALAKE_INFERENCE_PLATFORM).", platform=value)
    platform_type(name).check_settings(settings)
    return name


def _fits_platform(job: ValidatedJob, settings: Settings) -> ValidatedJob:
    """One image at the job's input_resolution must fit in a request to its platform."""
    width, height = job.params["input_resolution"]
    platform_type(job.platform).check_request(settings, width, height)
    return job


def resolution(value: Any, kind: str) -> list[int]:
    if value is None:
        return list(DEFAULT_RESOLUTION[kind])
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192
                       for v in value)):
        raise InvalidInput(f"input_resolution must be two positive integers (width, height) "
                           f"up to 8192, e.g. (480, 480); got {value!r}.",
                           input_resolution=repr(value))
    return [int(value[0]), int(value[1])]


def confidence(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 <= value <= 1):
        raise InvalidInput(f"confidence_threshold must be a number between 0 and 1; got "
                           f"{value!r}.", confidence_threshold=repr(value))
    return float(value)


def _selection(session: Session, request: AutotagRequest | AutoAnnotateRequest | EmbedRequest
               ) -> tuple[int | None, str, dict[str, Any]]:
    """(collection id, content type, params) of the files the job selects."""
    file_conditions(request.query, request.filter)  # raises InvalidQuery / InvalidFilter
    params: dict[str, Any] = {"query": request.query, "filter": request.filter}
    if request.collection_id is not None:
        raw = str(request.collection_id).strip()
        if not raw.isdigit():
            raise CollectionNotFound(f"No collection has id {request.collection_id!r}; "
                                     "collection ids are numbers (see list_collections).",
                                     collection_id=request.collection_id)
        collection = get_collection(session=session, collection_id=int(raw))
        return collection.id, collection.content_type, params
    if request.content_type not in CONTENT_TYPES:
        raise InvalidInput(f"content_type must be 'image' or 'video'; got "
                           f"{request.content_type!r}.", content_type=request.content_type)
    return None, request.content_type, params


def _common(session: Session, settings: Settings, kind: str,
            request: AutotagRequest | AutoAnnotateRequest | EmbedRequest) -> ValidatedJob:
    platform = platform_for(request.inference_platform, settings)
    collection_id, content_type, params = _selection(session, request)
    version = resolve_version(session, request.model_id, kind)
    params["content_type"] = content_type
    params["model_reference"] = request.model_id or "default"
    return ValidatedJob(kind=kind, platform=platform, version=version,
                        collection_id=collection_id, params=params)


def validate_autotag(session: Session, settings: Settings, request: AutotagRequest
                     ) -> ValidatedJob:
    job = _common(session, settings, "autotagging", request)
    job.params["input_resolution"] = resolution(request.input_resolution, "autotagging")
    job.params["confidence_threshold"] = confidence(request.confidence_threshold)
    return _fits_platform(job, settings)


def validate_embed(session: Session, settings: Settings, request: EmbedRequest) -> ValidatedJob:
    job = _common(session, settings, "embedding", request)
    job.params["input_resolution"] = resolution(request.input_resolution, "embedding")
    return _fits_platform(job, settings)


def prompts(value: list[PromptEntry | str] | None, labels: list[str] | None
            ) -> list[dict[str, str]]:
    """[{"label", "description"}]: plain strings mean label = description; no prompt means
    the model's own label list."""
    entries: list[dict[str, str]] = []
    for index, entry in enumerate(value or []):
        if isinstance(entry, str):
            entry = PromptEntry(label=entry, description=entry)
        label, description = entry.label.strip(), entry.description.strip()
        if not label or not description:
            raise InvalidInput(f"prompt[{index}] needs a non-empty label and description.",
                               index=index)
        entries.append({"label": label, "description": description})
    if not entries and labels:
        entries = [{"label": name, "description": name} for name in labels]
    if not entries:
        raise InvalidInput("Say what to annotate: prompt=[{'label': 'bird', 'description': "
                           "'a small bird'}, ...] or a list of strings.")
    return entries


def validate_auto_annotate(session: Session, settings: Settings, request: AutoAnnotateRequest
                           ) -> ValidatedJob:
    job = _common(session, settings, "auto_annotation", request)
    if request.annotation_type not in ANNOTATION_TYPES:
        raise InvalidInput(f"annotation_type must be 'polygon' or 'box'; got "
                           f"{request.annotation_type!r}.")
    job.params.update(
        input_resolution=resolution(request.input_resolution, "auto_annotation"),
        confidence_threshold=confidence(request.confidence_threshold),
        prompt=prompts(request.prompt, job.version.label_list),
        annotation_type=request.annotation_type,
        preview=bool(request.preview),
    )
    return _fits_platform(job, settings)
