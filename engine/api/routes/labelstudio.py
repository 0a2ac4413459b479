"""Label Studio: the ML backend under /ml; projects made from collections, annotations back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Request

from engine.api.deps import ReadKey, SessionDep, SettingsDep, StorageDep, WriteKey
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.config import Settings
from engine.interop import labelstudio as service
from engine.interop import labelstudio_manage as manage
from engine.interop import labelstudio_projects as projects
from engine.interop.labelstudio_api import LabelStudioApi
from engine.jobs.predict import run_prediction
from sdk.schemas import AnnotationUploadReport
from sdk.schemas_labelstudio import (
    AnnotationDownloadRequest,
    LabelStudioLabelGroupAttach,
    LabelStudioLabelsUpdate,
    LabelStudioPredictionsAttach,
    LabelStudioPredictionsAttached,
    LabelStudioProjectCreate,
    LabelStudioProjectDeleted,
    LabelStudioProjectFiles,
    LabelStudioProjectPublic,
    LabelStudioProjectSummary,
    LabelStudioTasksAdd,
    LabelStudioTasksAdded,
    MlHealth,
    MlPredictRequest,
    MlPredictResponse,
    MlSetupRequest,
    MlSetupResponse,
    MlWebhook,
    MlWebhookReport,
)
from sdk.schemas_predict import Detection

router = APIRouter(tags=["labelstudio"], route_class=JSONRoute)

# Label Studio joins /health, /setup, /predict, /webhook to the URL a user gives it: either
# http://<engine>/ml (the default model) or http://<engine>/ml/models/<name>.
ML_ROOTS = ("/ml", "/ml/models/{model}")


class _Predictor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self, model: str, images: Sequence[bytes], *, timeout: float
    ) -> tuple[int, list[list[Detection]]]:
        result = run_prediction(
            self.settings,
            model,
            images,
            confidence_threshold=self.settings.labelstudio_confidence,
            input_resolution=self.settings.labelstudio_input_resolution,
            timeout=timeout,
        )
        return result.version, result.detections


async def health(_: ReadKey, model: str | None = None) -> MlHealth:
    return MlHealth()


def setup(
    body: MlSetupRequest,
    session: SessionDep,
    settings: SettingsDep,
    _: ReadKey,
    model: str | None = None,
) -> MlSetupResponse:
    return service.setup(session=session, settings=settings, model=model)


def predict(
    body: MlPredictRequest,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    _: ReadKey,
    model: str | None = None,
) -> MlPredictResponse:
    """One prediction per task, regions in percent (docs/labelstudio.md)."""
    return service.predict(
        session=session,
        settings=settings,
        storage=storage,
        request=body,
        model=model,
        predictor=_Predictor(settings),
    )


def webhook(
    body: MlWebhook, session: SessionDep, _: WriteKey, model: str | None = None
) -> MlWebhookReport:
    """An annotation event from Label Studio: its human annotation comes into the lake."""
    return projects.webhook(session=session, event=body)


for _root in ML_ROOTS:
    router.add_api_route(f"{_root}/health", health, methods=["GET"], response_model=MlHealth)
    router.add_api_route(f"{_root}/setup", setup, methods=["POST"], response_model=MlSetupResponse)
    router.add_api_route(
        f"{_root}/predict", predict, methods=["POST"], response_model=MlPredictResponse
    )
    router.add_api_route(
        f"{_root}/webhook", webhook, methods=["POST"], response_model=MlWebhookReport
    )


# -- projects from collections, annotations back ----------------------------------------------
@router.post("/api/v1/labelstudio/projects", response_model=LabelStudioProjectPublic)
def create_project(
    body: LabelStudioProjectCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> LabelStudioProjectPublic:
    """A Label Studio project of a collection's files (query, filter), machine labels as
    predictions; task images at signed URLs of this engine."""
    base_url = settings.public_url or str(request.base_url)
    with LabelStudioApi.connect(settings, body.labelstudio_url, body.labelstudio_token) as api:
        return projects.create_project(
            session=session, settings=settings, api=api, request=body, base_url=base_url
        )


@router.post(
    "/api/v1/labelstudio/projects/{project_id}/annotations/download",
    response_model=AnnotationUploadReport,
)
def download_annotations(
    project_id: Id,
    body: AnnotationDownloadRequest,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> AnnotationUploadReport:
    """The project's human annotations replace those an earlier download brought."""
    with LabelStudioApi.connect(settings, body.labelstudio_url, body.labelstudio_token) as api:
        return projects.download_annotations(session=session, api=api, project_id=project_id)


# -- managing projects -------------------------------------------------------------------------
# GET and DELETE carry no body: another Label Studio than the engine's is named in headers.
LabelStudioUrl = Annotated[str | None, Header(alias="X-LabelStudio-Url")]
LabelStudioToken = Annotated[str | None, Header(alias="X-LabelStudio-Token")]


@router.get("/api/v1/labelstudio/projects", response_model=list[LabelStudioProjectSummary])
def list_projects(
    settings: SettingsDep,
    _: ReadKey,
    labelstudio_url: LabelStudioUrl = None,
    labelstudio_token: LabelStudioToken = None,
) -> list[LabelStudioProjectSummary]:
    """Every project of the Label Studio: name, task count, the labels its config offers."""
    with LabelStudioApi.connect(settings, labelstudio_url, labelstudio_token) as api:
        return manage.list_projects(api=api)


@router.get("/api/v1/labelstudio/projects/{project_id}", response_model=LabelStudioProjectSummary)
def get_project(
    project_id: Id,
    settings: SettingsDep,
    _: ReadKey,
    labelstudio_url: LabelStudioUrl = None,
    labelstudio_token: LabelStudioToken = None,
) -> LabelStudioProjectSummary:
    with LabelStudioApi.connect(settings, labelstudio_url, labelstudio_token) as api:
        return manage.get_project(api=api, project_id=project_id)


@router.delete(
    "/api/v1/labelstudio/projects/{project_id}", response_model=LabelStudioProjectDeleted
)
def delete_project(
    project_id: Id,
    settings: SettingsDep,
    _: WriteKey,
    labelstudio_url: LabelStudioUrl = None,
    labelstudio_token: LabelStudioToken = None,
) -> LabelStudioProjectDeleted:
    """The project leaves Label Studio; annotations already downloaded stay in the lake."""
    with LabelStudioApi.connect(settings, labelstudio_url, labelstudio_token) as api:
        return manage.delete_project(api=api, project_id=project_id)


@router.post(
    "/api/v1/labelstudio/projects/{project_id}/labels", response_model=LabelStudioProjectSummary
)
def update_labels(
    project_id: Id, body: LabelStudioLabelsUpdate, settings: SettingsDep, _: WriteKey
) -> LabelStudioProjectSummary:
    """Labels added to / removed from the project's labeling config."""
    with LabelStudioApi.connect(settings, body.labelstudio_url, body.labelstudio_token) as api:
        return manage.update_labels(
            api=api, project_id=project_id, add=body.add, remove=body.remove
        )


@router.post(
    "/api/v1/labelstudio/projects/{project_id}/label-group",
    response_model=LabelStudioProjectSummary,
)
def attach_label_group(
    project_id: Id,
    body: LabelStudioLabelGroupAttach,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> LabelStudioProjectSummary:
    """A label group's labels (the lake's registry) join the project's labeling config."""
    with LabelStudioApi.connect(settings, body.labelstudio_url, body.labelstudio_token) as api:
        return manage.attach_label_group(
            session=session, api=api, project_id=project_id, group_id=body.group_id
        )


@router.post(
    "/api/v1/labelstudio/projects/{project_id}/tasks", response_model=LabelStudioTasksAdded
)
def add_files(
    project_id: Id,
    body: LabelStudioTasksAdd,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> LabelStudioTasksAdded:
    """Tasks for the selected files the project has not got, machine labels as predictions."""
    base_url = settings.public_url or str(request.base_url)
    with LabelStudioApi.connect(settings, body.labelstudio_url, body.labelstudio_token) as api:
        return manage.add_files(
            session=session,
            settings=settings,
            api=api,
            project_id=project_id,
            request=body,
            base_url=base_url,
        )


@router.post(
    "/api/v1/labelstudio/projects/{project_id}/predictions",
    response_model=LabelStudioPredictionsAttached,
)
def attach_operations(
    project_id: Id,
    body: LabelStudioPredictionsAttach,
    session: SessionDep,
    settings: SettingsDep,
    _: WriteKey,
) -> LabelStudioPredictionsAttached:
    """The annotations of operations (model runs) and jobs as predictions of the project's
    tasks."""
    with LabelStudioApi.connect(settings, body.labelstudio_url, body.labelstudio_token) as api:
        return manage.attach_operations(
            session=session,
            api=api,
            project_id=project_id,
            operation_ids=body.operation_ids,
            job_ids=body.job_ids,
        )


@router.get(
    "/api/v1/labelstudio/projects/{project_id}/files", response_model=LabelStudioProjectFiles
)
def project_files(
    project_id: Id,
    settings: SettingsDep,
    _: ReadKey,
    labelstudio_url: LabelStudioUrl = None,
    labelstudio_token: LabelStudioToken = None,
) -> LabelStudioProjectFiles:
    """The lake files (unique names) the project's tasks show."""
    with LabelStudioApi.connect(settings, labelstudio_url, labelstudio_token) as api:
        return manage.project_files(api=api, project_id=project_id)
