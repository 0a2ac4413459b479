"""The label registry: labels and named groups of them."""

from __future__ import annotations

from fastapi import APIRouter, status

from engine.api.deps import ReadKey, SessionDep, WriteKey
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.lake import labels as service
from sdk.schemas_labels import (
    LabelCreate,
    LabelGroupCreate,
    LabelGroupPublic,
    LabelIds,
    LabelPublic,
)

router = APIRouter(tags=["labels"], route_class=JSONRoute)


@router.get("/labels", response_model=list[LabelPublic])
def list_labels(session: SessionDep, _: ReadKey, group_id: Id | None = None) -> list[LabelPublic]:
    """Every label by name, or those of one group."""
    return service.list_labels(session=session, group_id=group_id)


@router.post("/labels", response_model=LabelPublic, status_code=status.HTTP_201_CREATED)
def create_label(body: LabelCreate, session: SessionDep, _: WriteKey) -> LabelPublic:
    """The label of that name: created, or the existing one as it is."""
    return service.create_label(session=session, label=body)


@router.get("/label-groups", response_model=list[LabelGroupPublic])
def list_groups(session: SessionDep, _: ReadKey) -> list[LabelGroupPublic]:
    return service.list_groups(session=session)


@router.post("/label-groups", response_model=LabelGroupPublic, status_code=status.HTTP_201_CREATED)
def create_group(body: LabelGroupCreate, session: SessionDep, _: WriteKey) -> LabelGroupPublic:
    """A new group of existing labels (409 if the name is taken)."""
    return service.create_group(session=session, group=body)


@router.post("/label-groups/{group_id}/labels", response_model=LabelGroupPublic)
def attach_labels(
    group_id: Id, body: LabelIds, session: SessionDep, _: WriteKey
) -> LabelGroupPublic:
    """Add labels to the group (those it holds stay once)."""
    return service.attach(session=session, group_id=group_id, label_ids=body.label_ids)


@router.post("/label-groups/{group_id}/labels/detach", response_model=LabelGroupPublic)
def detach_labels(
    group_id: Id, body: LabelIds, session: SessionDep, _: WriteKey
) -> LabelGroupPublic:
    """Take labels out of the group (the labels themselves stay)."""
    return service.detach(session=session, group_id=group_id, label_ids=body.label_ids)
