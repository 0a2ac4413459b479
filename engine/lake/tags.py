"""Tags of one file: image-level names. Humans add and remove their own tags here; machine tags
(one per file, name and model version) are written by autotagging jobs with the same upsert."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.models import Tag
from engine.errors import TagNotFound
from engine.lake.annotations import get_file
from engine.lake.formats.parsed import Problems, read_label
from engine.textformats import excerpt


def add_tags(*, session: Session, unique_name: str, names: list[str]) -> list[Tag]:
    """Add human tags; a tag the file already has is left as it is. Returns the file's tags."""
    file = get_file(session=session, unique_name=unique_name)
    problems = Problems("The tag list")
    clean = [read_label(name, f"tags[{i}]", problems, "name") for i, name in enumerate(names)]
    problems.raise_if_any()
    values = [
        {"file_id": file.id, "name": name, "source": "human"}
        for name in dict.fromkeys(n for n in clean if n)
    ]
    if values:
        session.execute(insert(Tag).values(values).on_conflict_do_nothing())
    return list_tags(session=session, unique_name=unique_name)


def list_tags(*, session: Session, unique_name: str) -> list[Tag]:
    file = get_file(session=session, unique_name=unique_name)
    return list(
        session.scalars(
            select(Tag).where(Tag.file_id == file.id).order_by(Tag.name, Tag.source, Tag.id)
        )
    )


def delete_tag(*, session: Session, unique_name: str, name: str, source: str = "human") -> None:
    """Remove the file's tag `name` of `source` (human by default; machine tags of every model
    version when source is "machine")."""
    file = get_file(session=session, unique_name=unique_name)
    deleted = session.execute(
        delete(Tag).where(Tag.file_id == file.id, Tag.name == name, Tag.source == source)
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise TagNotFound(
            f"File {excerpt(unique_name)!r} has no {source} tag "
            f"{excerpt(name)!r}; list its tags to see them.",
            unique_name=unique_name,
            name=name,
            source=source,
        )
