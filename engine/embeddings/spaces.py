"""Embedding spaces: where comparable vectors live, found from the `model_name` a caller gives.

A registered embedding model names the space of its version (`<name>@<version>`); any other name
is an external space whose dimension its first insert sets. A registered model is deleted here
(`delete_model`), with its spaces' HNSW indexes. The rules: docs/similarity.md, "Spaces".
"""

from __future__ import annotations

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.embeddings import EmbeddingSpace
from engine.db.models import Model, ModelVersion
from engine.embeddings.indexing import drop_index
from engine.errors import (
    EmbeddingDimensionMismatch,
    EmbeddingSpaceNotFound,
    InvalidEmbeddings,
)
from engine.registry import store as registry_store
from engine.registry.store import DEFAULT, resolve_version

EMBEDDING = "embedding"
MAX_DIM = 4000  # halfvec's HNSW limit (and the table's check constraint)


def version_space_name(model_name: str, version: int) -> str:
    return f"{model_name}@{version}"


def check_dimension(dim: int) -> int:
    if not 0 < dim <= MAX_DIM:
        raise InvalidEmbeddings(
            f"Invalid vector dimension {dim}: use 1 to {MAX_DIM}.", dimension=dim
        )
    return dim


def _registered(session: Session, model_name: str) -> tuple[ModelVersion, str] | None:
    """The embedding model version `model_name` refers to (with its model's name), or None when
    it names no registered model (an external space)."""
    reference = model_name.strip()
    if reference in ("", DEFAULT):
        version = resolve_version(session, None, EMBEDDING)
    else:
        name, _, _ = reference.partition("@")
        if session.scalar(select(Model.id).where(Model.name == name)) is None:
            if "@" in reference:
                raise InvalidEmbeddings(
                    f"No registered model is named {name!r}; `@` selects a registered model's "
                    "version, so an external embedding space name cannot contain it. Choose "
                    "a name without `@`.",
                    model_name=model_name,
                )
            return None
        version = resolve_version(session, reference, EMBEDDING)
    model_name_ = session.scalars(select(Model.name).where(Model.id == version.model_id)).one()
    return version, model_name_


def _mismatch(space: EmbeddingSpace, dim: int) -> EmbeddingDimensionMismatch:
    return EmbeddingDimensionMismatch(
        f"The embedding space {space.name!r} holds {space.dim}-d vectors; these are {dim}-d. "
        "Send vectors of the same dimension, or use another model_name for vectors of another "
        "model.",
        space=space.name,
        expected=space.dim,
        received=dim,
    )


def _create(
    session: Session, *, name: str, dim: int, model_version_id: int | None
) -> EmbeddingSpace:
    """Insert the space unless a concurrent writer already did; return the stored row."""
    session.execute(
        insert(EmbeddingSpace)
        .values(name=name, dim=check_dimension(dim), model_version_id=model_version_id)
        .on_conflict_do_nothing()
    )
    space = session.scalars(
        select(EmbeddingSpace)
        .where(EmbeddingSpace.name == name)
        .execution_options(populate_existing=True)
    ).one()
    if space.model_version_id != model_version_id:
        kind = "an external space" if space.model_version_id is None else "a model's space"
        raise InvalidEmbeddings(
            f"The name {name!r} is already {kind}; use another name.", space=name
        )
    return space


def space_for_version(
    session: Session,
    *,
    model_version_id: int,
    model_name: str,
    version: int,
    declared_dim: int | None,
    dim: int,
) -> EmbeddingSpace:
    """The space of a registered model version, created on its first vectors (of `dim`)."""
    space = session.scalars(
        select(EmbeddingSpace).where(EmbeddingSpace.model_version_id == model_version_id)
    ).one_or_none()
    if space is None:
        if declared_dim is not None and declared_dim != dim:
            raise EmbeddingDimensionMismatch(
                f"Model {version_space_name(model_name, version)} declares {declared_dim}-d "
                f"embeddings; these are {dim}-d.",
                space=version_space_name(model_name, version),
                expected=declared_dim,
                received=dim,
            )
        if declared_dim is None:  # measured on first use; the registry allows setting it once
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == model_version_id, ModelVersion.embedding_dim.is_(None))
                .values(embedding_dim=dim)
            )
        space = _create(
            session,
            name=version_space_name(model_name, version),
            dim=dim,
            model_version_id=model_version_id,
        )
    if space.dim != dim:
        raise _mismatch(space, dim)
    return space


def space_for_write(session: Session, model_name: str, dim: int) -> EmbeddingSpace:
    """The space vectors of `dim` given under `model_name` go to (created by the first write)."""
    check_dimension(dim)
    registered = _registered(session, model_name)
    if registered is not None:
        version, name = registered
        return space_for_version(
            session,
            model_version_id=version.id,
            model_name=name,
            version=version.version,
            declared_dim=version.embedding_dim,
            dim=dim,
        )
    space = session.scalars(
        select(EmbeddingSpace).where(EmbeddingSpace.name == model_name)
    ).one_or_none()
    if space is None:
        space = _create(session, name=model_name, dim=dim, model_version_id=None)
    if space.dim != dim:
        raise _mismatch(space, dim)
    return space


def _named(session: Session, model_name: str) -> EmbeddingSpace | None:
    """The space whose name is `model_name` itself, in one query, when that is the space it
    names: a version's space (`name@N`), or an external space no registered model shadows.
    None sends the caller down the full resolution (`default`, a model's name alone)."""
    if model_name == DEFAULT:
        return None
    return session.scalars(NAMED_SPACE, {"model_name": model_name}).one_or_none()


# Built once, not per search (every search resolves its space). Also run by
# engine/api/fast_search.py.
NAMED_SPACE = select(EmbeddingSpace).where(
    EmbeddingSpace.name == bindparam("model_name"),
    or_(
        EmbeddingSpace.model_version_id.is_not(None),
        ~exists().where(Model.name == bindparam("model_name")),
    ),
)


def space_for_read(session: Session, model_name: str) -> EmbeddingSpace:
    """The existing space `model_name` names; `EmbeddingSpaceNotFound` listing the spaces
    that have vectors otherwise."""
    named = _named(session, model_name)  # the common case, in one query (search latency)
    if named is not None:
        return named
    registered = _registered(session, model_name)
    if registered is not None:
        version, name = registered
        where = EmbeddingSpace.model_version_id == version.id
        label = version_space_name(name, version.version)
    else:
        where = EmbeddingSpace.name == model_name
        label = model_name
    space = session.scalars(select(EmbeddingSpace).where(where)).one_or_none()
    if space is None:
        names = list(session.scalars(select(EmbeddingSpace.name).order_by(EmbeddingSpace.name)))
        known = (
            f"Spaces with embeddings: {', '.join(names)}."
            if names
            else "No embeddings are stored yet."
        )
        raise EmbeddingSpaceNotFound(
            f"No embeddings are stored for {label!r}: generate them "
            "(generate_embeddings_for_collection) or insert them (insert_image_embeddings). "
            f"{known}",
            model_name=model_name,
            spaces=names,
        )
    return space


def delete_model(*, session: Session, name: str, force: bool = False) -> None:
    """Delete a registered model with its versions, their spaces and vectors
    (`engine.registry.store.delete_model`, refused as it refuses), dropping the spaces' HNSW
    indexes first: the database's cascade removes rows, never an index."""
    model = registry_store.model_to_delete(session=session, name=name, force=force)
    for space in session.scalars(
        select(EmbeddingSpace)
        .join(ModelVersion, ModelVersion.id == EmbeddingSpace.model_version_id)
        .where(ModelVersion.model_id == model.id)
    ):
        drop_index(session, space)
    registry_store.delete_model(session=session, name=name, force=force)
