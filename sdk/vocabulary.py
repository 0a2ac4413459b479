"""The job vocabulary, defined once: kinds, statuses, applications and platforms.

StrEnums, so a member is the same string in JSON, in the database and in comparisons
(`JobStatus.QUEUED == "queued"`). The engine imports them from here (pydantic only, no server
imports): the API's schemas, the database's CHECK constraints, the worker, the model contract.
"""

from __future__ import annotations

from enum import StrEnum


class Application(StrEnum):
    """What a registered model does (`models.application`)."""

    AUTOTAGGING = "autotagging"
    AUTO_ANNOTATION = "auto_annotation"
    EMBEDDING = "embedding"


# Accepted spellings of each application (the seed SDK writes both autotagging and auto_tagging).
APPLICATION_SPELLINGS: dict[str, Application] = {
    **{application.value: application for application in Application},
    "auto_tagging": Application.AUTOTAGGING,
}


class JobKind(StrEnum):
    """What a job does (`jobs.kind`): one per application, plus importing vectors and
    writing an export archive."""

    AUTOTAGGING = "autotagging"
    AUTO_ANNOTATION = "auto_annotation"
    EMBEDDING = "embedding"
    EMBEDDING_IMPORT = "embedding_import"
    EXPORT = "export"


class JobStatus(StrEnum):
    """Where a job is (`jobs.status`)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_JOB_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.SUCCEEDED,
    JobStatus.PARTIALLY_FAILED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)


class ItemStatus(StrEnum):
    """Where one file of a job is (`job_items.status`)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Platform(StrEnum):
    """Where a job's model runs (`jobs.platform`): this machine's model hosts, a SageMaker
    endpoint, or nowhere (an import of vectors computed elsewhere)."""

    LOCAL = "local"
    AWS = "aws"
    NONE = "none"


class PlatformChoice(StrEnum):
    """What a request may ask for: a platform that runs models, or `use_env`
    (METALAKE_INFERENCE_PLATFORM)."""

    USE_ENV = "use_env"
    LOCAL = Platform.LOCAL.value
    AWS = Platform.AWS.value
