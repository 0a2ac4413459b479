"""The label registry: labels (a name, a description, attributes) and named groups of them.

Creating a label whose name exists returns that label, so a script may run again; a group's
name is unique. Attaching a label a group holds, or detaching one it does not, changes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.models import Label, LabelGroup, label_group_members
from engine.errors import LabelGroupExists, LabelNotFound
from sdk.schemas_labels import LabelCreate, LabelGroupCreate, LabelGroupPublic, LabelPublic


def _group_names(session: Session, label_ids: Sequence[int]) -> dict[int, list[str]]:
    rows = session.execute(
        select(label_group_members.c.label_id, LabelGroup.name)
        .join(LabelGroup, LabelGroup.id == label_group_members.c.group_id)
        .where(label_group_members.c.label_id.in_(label_ids))
        .order_by(LabelGroup.name)
    )
    names: dict[int, list[str]] = {}
    for label_id, name in rows:
        names.setdefault(label_id, []).append(name)
    return names


def _public(session: Session, labels: Sequence[Label]) -> list[LabelPublic]:
    groups = _group_names(session, [label.id for label in labels])
    return [
        LabelPublic.model_validate(
            {
                "id": label.id,
                "name": label.name,
                "description": label.description,
                "attributes": label.attributes,
                "created_at": label.created_at,
                "groups": groups.get(label.id, []),
            }
        )
        for label in labels
    ]


def _group(session: Session, group_id: int) -> LabelGroup:
    group = session.get(LabelGroup, group_id)
    if group is None:
        raise LabelNotFound(
            f"No label group has id {group_id}; list them with GET /label-groups.",
            group_id=group_id,
        )
    return group


def _check_labels(session: Session, label_ids: Sequence[int]) -> list[int]:
    wanted = sorted(set(label_ids))
    found = set(session.scalars(select(Label.id).where(Label.id.in_(wanted))).all())
    missing = [i for i in wanted if i not in found]
    if missing:
        raise LabelNotFound(
            f"No label has id(s) {missing}; list them with GET /labels.", label_ids=missing
        )
    return wanted


def list_labels(*, session: Session, group_id: int | None = None) -> list[LabelPublic]:
    """Every label by name, or those of one group."""
    query = select(Label).order_by(Label.name)
    if group_id is not None:
        _group(session, group_id)
        query = query.join(label_group_members, label_group_members.c.label_id == Label.id).where(
            label_group_members.c.group_id == group_id
        )
    return _public(session, session.scalars(query).all())


def create_label(*, session: Session, label: LabelCreate) -> LabelPublic:
    """The label of that name: created, or the existing one as it is."""
    values = label.model_dump(mode="json")
    session.execute(insert(Label).values(**values).on_conflict_do_nothing(index_elements=["name"]))
    row = session.scalars(select(Label).where(Label.name == label.name)).one()
    return _public(session, [row])[0]


def group_public(*, session: Session, group_id: int) -> LabelGroupPublic:
    group = _group(session, group_id)
    rows = session.execute(
        select(Label.id, Label.name)
        .join(label_group_members, label_group_members.c.label_id == Label.id)
        .where(label_group_members.c.group_id == group_id)
        .order_by(Label.name)
    ).all()
    return LabelGroupPublic(
        id=group.id,
        name=group.name,
        created_at=group.created_at,
        labels=[r.name for r in rows],
        label_ids=sorted(r.id for r in rows),
    )


def list_groups(*, session: Session) -> list[LabelGroupPublic]:
    ids = session.scalars(select(LabelGroup.id).order_by(LabelGroup.name)).all()
    return [group_public(session=session, group_id=i) for i in ids]


def create_group(*, session: Session, group: LabelGroupCreate) -> LabelGroupPublic:
    label_ids = _check_labels(session, group.label_ids)
    exists = session.scalar(select(func.count()).where(LabelGroup.name == group.name))
    if exists:
        raise LabelGroupExists(
            f"A label group is named {group.name!r}; attach labels to it, or pick another name.",
            name=group.name,
        )
    row = LabelGroup(name=group.name)
    session.add(row)
    session.flush()
    attach(session=session, group_id=row.id, label_ids=label_ids)
    return group_public(session=session, group_id=row.id)


def attach(*, session: Session, group_id: int, label_ids: Sequence[int]) -> LabelGroupPublic:
    _group(session, group_id)
    wanted = _check_labels(session, label_ids)
    session.execute(
        insert(label_group_members)
        .values([{"group_id": group_id, "label_id": i} for i in wanted])
        .on_conflict_do_nothing()
    )
    return group_public(session=session, group_id=group_id)


def detach(*, session: Session, group_id: int, label_ids: Sequence[int]) -> LabelGroupPublic:
    _group(session, group_id)
    session.execute(
        delete(label_group_members).where(
            label_group_members.c.group_id == group_id,
            label_group_members.c.label_id.in_(list(label_ids)),
        )
    )
    return group_public(session=session, group_id=group_id)
