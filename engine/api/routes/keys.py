from __future__ import annotations

from fastapi import APIRouter, status

from engine import auth
from engine.api.deps import AdminKey, SessionDep
from engine.api.params import Id
from engine.api.routing import JSONRoute
from engine.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic

router = APIRouter(prefix="/keys", tags=["keys"], route_class=JSONRoute)


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, session: SessionDep, _: AdminKey) -> ApiKeyCreated:
    """Create an API key. The key itself is returned only in this response."""
    key, row = auth.create_key(session=session, name=body.name, scopes=body.scopes)
    return ApiKeyCreated(key=key, **ApiKeyPublic.model_validate(row).model_dump())


@router.get("", response_model=list[ApiKeyPublic])
def list_keys(session: SessionDep, _: AdminKey) -> list[ApiKeyPublic]:
    return [ApiKeyPublic.model_validate(row) for row in auth.list_keys(session=session)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: Id, session: SessionDep, _: AdminKey) -> None:
    auth.revoke_key(session=session, key_id=key_id)
