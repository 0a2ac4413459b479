"""Engine errors: one root, a subclass for each failure a user can act on.

The docstring of each class is its default message; data lives on attributes and in
`details`; the HTTP status lives on the class, so the API maps any `EngineError` to a
response in one handler (`engine.api.errors`).
"""

from __future__ import annotations

from typing import Any, ClassVar


class EngineError(Exception):
    """The engine could not complete the request."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "engine_error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or " ".join((self.__doc__ or self.code).split())
        self.details = details
        super().__init__(self.message)


# -- 400: the request itself is wrong ------------------------------------------------------
class InvalidInput(EngineError):
    """The request is invalid."""

    status_code = 400
    code = "invalid_input"


class InvalidQuery(InvalidInput):
    """The query could not be parsed."""

    code = "invalid_query"

    def __init__(
        self, message: str, *, query: str, position: int, expected: list[str] | None = None
    ) -> None:
        super().__init__(message, query=query, position=position, expected=expected or [])
        self.position = position
        self.expected = expected or []


class InvalidFilter(InvalidInput):
    """The filter is invalid."""

    code = "invalid_filter"


class InvalidPath(InvalidInput):
    """The path cannot be ingested."""

    code = "invalid_path"


class InvalidDocument(InvalidInput):
    """The JSON or YAML document is invalid, nested too deeply, or its aliases expand too far."""

    code = "invalid_document"

    def __init__(self, message: str, *, document: str, reason: str, **details: Any) -> None:
        super().__init__(message, document=document, reason=reason, **details)
        self.document = document
        self.reason = reason


class DocumentTooLarge(InvalidDocument):
    """The document is larger than METALAKE_DOCUMENT_MAX_BYTES."""

    status_code = 413
    code = "document_too_large"


class UnreadableFile(InvalidInput):
    """The file is empty, corrupt or not readable as the collection's content type."""

    code = "unreadable_file"

    def __init__(self, reason: str, *, path: str | None = None) -> None:
        super().__init__(reason, path=path)
        self.reason = reason
        self.path = path


class IngestListingTooLarge(InvalidInput):
    """The S3 prefix holds more objects than one ingest request may list
    (METALAKE_INGEST_MAX_LISTING); ingest its sub-prefixes one by one."""

    code = "ingest_listing_too_large"


class NoManagedStorage(InvalidInput):
    """This engine has no managed storage to upload into: register files in place (a path the
    engine can read) or set METALAKE_MANAGED_STORAGE_URL on the engine."""

    code = "no_managed_storage"


class InvalidAnnotations(InvalidInput):
    """The annotation file is invalid."""

    code = "invalid_annotations"


class NoImagesMatched(InvalidAnnotations):
    """None of the document's images is a file of the collection; nothing was written."""

    code = "no_images_matched"


class InvalidSplit(InvalidInput):
    """A dataset's split_info, labels or export_types cannot be used as given."""

    code = "invalid_split"


class UnknownExportFormat(InvalidInput):
    """The export format is not one the engine writes."""

    code = "unknown_export_format"


class ExportNotPossible(InvalidInput):
    """The selection cannot be written in the requested export format."""

    code = "export_not_possible"


class LabelStudioNotConfigured(InvalidInput):
    """No Label Studio to talk to: pass labelstudio_url and labelstudio_token, or set
    METALAKE_LABELSTUDIO_URL and METALAKE_LABELSTUDIO_TOKEN on the engine."""

    code = "labelstudio_not_configured"


class LabelStudioRefused(InvalidInput):
    """Label Studio refused the request (its answer is in the message): check the token
    (Account & Settings in Label Studio) and the project id."""

    code = "labelstudio_refused"


class UnknownApplication(InvalidInput):
    """Unknown application: use autotagging (or auto_tagging), auto_annotation or embedding."""

    code = "unknown_application"


class InvalidModelName(InvalidInput):
    """Invalid model name."""

    code = "invalid_model_name"


class BundleInvalid(InvalidInput):
    """The model bundle breaks a rule of the bundle layout (docs/bundles.md)."""

    code = "bundle_invalid"

    def __init__(self, message: str, *, path: str, rule: str, **details: Any) -> None:
        super().__init__(message, path=path, rule=rule, **details)
        self.path = path
        self.rule = rule


class BundleTooLarge(BundleInvalid):
    """The model bundle is larger than METALAKE_BUNDLE_MAX_BYTES."""

    status_code = 413
    code = "bundle_too_large"


class RequestTooLarge(InvalidInput):
    """The request body is larger than this route accepts (METALAKE_REQUEST_MAX_BYTES, or the
    upload limits of the upload routes)."""

    status_code = 413
    code = "request_too_large"


class InvalidEmbeddings(InvalidInput):
    """The embeddings are invalid: each needs a known uniqueName and a vector of finite numbers
    of the declared dimension."""

    code = "invalid_embeddings"


class EmbeddingBatchTooLarge(InvalidEmbeddings):
    """A batch holds at most 100 embeddings: split the list, or use
    insert_image_embeddings, which sends any number in batches."""

    code = "embedding_batch_too_large"


class WeightsMissing(InvalidInput):
    """A weights file a default model needs is not in METALAKE_WEIGHTS_DIR."""

    code = "weights_missing"


class UnknownPlatform(InvalidInput):
    """Unknown inference platform: use 'local', 'aws' or 'use_env' (METALAKE_INFERENCE_PLATFORM)."""

    code = "unknown_platform"


class PlatformNotConfigured(InvalidInput):
    """The aws inference platform is not configured: set METALAKE_SAGEMAKER_IMAGE_URI,
    METALAKE_SAGEMAKER_ROLE_ARN and METALAKE_SAGEMAKER_BUCKET on the engine (docs/aws.md)."""

    code = "platform_not_configured"

    def __init__(self, message: str | None = None, *, missing: list[str]) -> None:
        super().__init__(message, missing=missing)
        self.missing = missing


# -- 401 / 403: who is asking --------------------------------------------------------------
class Unauthorized(EngineError):
    """A valid API key is required: send `Authorization: Bearer <key>`, or the key as the
    password of HTTP Basic auth (see `metalake keys`)."""

    status_code = 401
    code = "unauthorized"


class Forbidden(EngineError):
    """This API key lacks the scope this action needs."""

    status_code = 403
    code = "forbidden"


class ServerPathForbidden(Forbidden):
    """Registering files in place from the engine's own disk needs an admin key, or a path
    under METALAKE_INGEST_ROOTS for a write key."""

    code = "server_path_forbidden"


class SignedUrlInvalid(Forbidden):
    """The signed URL's token does not match its file and expiry: it was altered, or signed
    with a key that has since been rotated out. Ask the engine for a new URL."""

    code = "signed_url_invalid"


class SignedUrlExpired(SignedUrlInvalid):
    """The signed URL has expired; ask the engine for a new one (GET /files/{name}/url)."""

    code = "signed_url_expired"


# -- 404 / 409 -----------------------------------------------------------------------------
class NotFound(EngineError):
    """The requested object does not exist."""

    status_code = 404
    code = "not_found"


class CollectionNotFound(NotFound):
    """No such collection."""

    code = "collection_not_found"


class FileNotFoundInLake(NotFound):
    """No file with that unique name is in the lake."""

    code = "file_not_found"


class AnnotationNotFound(NotFound):
    """No such annotation on this file."""

    code = "annotation_not_found"


class TagNotFound(NotFound):
    """No such tag on this file."""

    code = "tag_not_found"


class ModelNotFound(NotFound):
    """No such model."""

    code = "model_not_found"


class DatasetVersionNotFound(NotFound):
    """No dataset version has that id."""

    code = "dataset_version_not_found"


class JobNotFound(NotFound):
    """No such job."""

    code = "job_not_found"


class EmbeddingSpaceNotFound(NotFound):
    """No embeddings are stored for that model name."""

    code = "embedding_space_not_found"


class EmbeddingNotFound(NotFound):
    """The file has no embedding for that model."""

    code = "embedding_not_found"


class LabelNotFound(NotFound):
    """No label or label group has that id; list them with GET /labels and /label-groups."""

    code = "label_not_found"


class Conflict(EngineError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "conflict"


class CollectionExists(Conflict):
    """A collection with that name already exists."""

    code = "collection_exists"


class CollectionContentTypeMismatch(Conflict):
    """The collection already exists with another content type."""

    code = "collection_content_type_mismatch"


class ModelApplicationConflict(Conflict):
    """A model with that name exists for another application."""

    code = "model_application_conflict"


class DatasetExists(Conflict):
    """A dataset has that name; add a version to it or pick another name."""

    code = "dataset_exists"


class ExportNotReady(Conflict):
    """The export job has not finished writing its archive; wait for the job, then download."""

    code = "export_not_ready"


class JobNotRetryable(Conflict):
    """The job is still running; wait for it (or cancel it) before retrying its failed items."""

    code = "job_not_retryable"


class EmbeddingDimensionMismatch(Conflict):
    """The vectors' dimension differs from the embedding space's."""

    code = "embedding_dimension_mismatch"


class ModelInUse(Conflict):
    """The model is used by a job that has not finished."""

    code = "model_in_use"


class FileChangedSinceIngest(Conflict):
    """The file's bytes are no longer those the lake registered (its size, SHA-256 or the path
    itself changed since ingest); re-ingest it to register the new bytes."""

    code = "file_changed_since_ingest"


class LabelGroupExists(Conflict):
    """A label group has that name; attach labels to it, or pick another name."""

    code = "label_group_exists"


class FilesInUse(Conflict):
    """Some of the files are in use by an unfinished job or a dataset version."""

    code = "files_in_use"


class SystemModelProtected(Conflict):
    """The model is one the engine installed itself (`metalake models install-defaults`); an
    admin deletes it only by forcing (`force=true`)."""

    code = "system_model"


# -- 5xx: the engine's own dependencies ----------------------------------------------------
class ServiceUnavailable(EngineError):
    """A service the engine depends on is unavailable; retry shortly."""

    status_code = 503
    code = "service_unavailable"


class LabelStudioUnavailable(EngineError):
    """Label Studio could not be reached or failed; check METALAKE_LABELSTUDIO_URL and that
    Label Studio is running."""

    status_code = 502
    code = "labelstudio_unavailable"


class StorageError(ServiceUnavailable):
    """The object store could not be reached or refused the request."""

    code = "storage_error"


class NoWorkerAvailable(ServiceUnavailable):
    """No worker took the prediction in time: start one (`metalake worker`, or `metalake up`)
    consuming the inference queue, or wait for the running jobs to leave it room."""

    code = "no_worker_available"


class PredictionTimeout(EngineError):
    """A worker took the prediction but did not answer in time (a model host starting for
    the first time may install its environment first); retry, or raise the timeout."""

    status_code = 504
    code = "prediction_timeout"


# -- model host: a bundle's code failed or misbehaved (the worker lives on) ----------------
class ModelHostError(EngineError):
    """The model host could not run the batch."""

    status_code = 502
    code = "model_host_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        version_key: str | None = None,
        log_file: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, version_key=version_key, log_file=log_file, **details)
        self.version_key = version_key
        self.log_file = log_file


class ModelEnvironmentFailed(ModelHostError):
    """The bundle's code/requirements.txt could not be installed."""

    code = "model_environment_failed"


class ModelLoadFailed(ModelHostError):
    """Importing the bundle's inference.py or running its model_fn failed."""

    code = "model_load_failed"


class ModelCodeError(ModelHostError):
    """The bundle's input_fn, predict_fn or output_fn raised an exception."""

    code = "model_error"


class ModelHostCrashed(ModelHostError):
    """The model host process exited unexpectedly."""

    code = "model_host_crashed"


class ModelHostTimeout(ModelHostError):
    """The model host did not answer in time and was stopped."""

    code = "model_host_timeout"


class ModelHostOutOfMemory(ModelHostError):
    """The model host exceeded its memory limit and was stopped."""

    code = "model_host_out_of_memory"


# -- the aws platform: a SageMaker endpoint stands in for the model host -------------------
class EndpointError(ModelHostError):
    """The SageMaker endpoint could not run the batch."""

    code = "endpoint_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        endpoint_name: str,
        version_key: str | None = None,
        log_file: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message,
            version_key=version_key,
            log_file=log_file,
            endpoint_name=endpoint_name,
            **details,
        )
        self.endpoint_name = endpoint_name


class EndpointSetupFailed(EndpointError):
    """Creating the SageMaker model, endpoint config or endpoint failed, or the endpoint did
    not become InService in time (METALAKE_SAGEMAKER_ENDPOINT_TIMEOUT)."""

    code = "endpoint_setup_failed"


class EndpointModelError(EndpointError, ModelCodeError):
    """The model container of the SageMaker endpoint answered with an error (ModelError)."""

    code = "model_error"


class EndpointRejected(EndpointError):
    """SageMaker refused the invocation (ValidationError): the endpoint is missing or not
    InService, or the request is malformed."""

    code = "endpoint_rejected"


class EndpointThrottled(EndpointError):
    """SageMaker kept throttling the endpoint's invocations after retries; lower the number of
    inference workers or give the endpoint more instances."""

    status_code = 503
    code = "endpoint_throttled"


class EndpointPayloadTooLarge(EndpointError):
    """The request body is larger than a SageMaker endpoint accepts
    (METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES): split the batch into smaller chunks."""

    status_code = 413
    code = "endpoint_payload_too_large"
