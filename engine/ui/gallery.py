"""What the gallery's pages show, read from the lake in a fixed number of statements whatever
the page's size: a page of cards with the count of matches, the sidebar's counts (GROUP BY in
the database), one item with its annotations and tags, and its neighbours in the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Subquery, func, select, union, union_all
from sqlalchemy.orm import Session

from engine.db.jobs import Job
from engine.db.models import Annotation, Collection, File, Model, ModelVersion, Tag
from engine.db.models import collection_files as cf
from engine.errors import FileNotFoundInLake
from engine.lake.items import SORT_COLUMNS, display_name, item_conditions
from sdk.schemas import ItemQuery

Sort = Literal["name", "date", "size", "score"]
Order = Literal["asc", "desc"]
SORTS: dict[str, str] = {"name": "name", "date": "date_created", "size": "size", "score": "score"}
PAGE_SIZE = 48
FACET_LIMIT = 30  # the most common values shown per sidebar group


@dataclass(frozen=True)
class Search:
    """The grid's state, as its URL carries it."""

    query: str = ""
    sort: Sort = "date"
    order: Order = "desc"

    def conditions(self, session: Session) -> list[ColumnElement[bool]]:
        return item_conditions(session=session, search=ItemQuery(query=self.query or None))

    def ordered(self, statement: Select[Any]) -> Select[Any]:
        """`statement` (over files) in the order asked for. By score it is joined to every
        file's score, aggregated once (hashed) rather than looked up per matching file; files
        without a machine score come last either way."""
        if self.sort == "score":
            scores = _scores()
            statement = statement.outerjoin(scores, scores.c.file_id == File.id)
            if self.order == "desc":
                return statement.order_by(scores.c.score.desc().nulls_last(), File.id.desc())
            return statement.order_by(scores.c.score.asc().nulls_last(), File.id)
        column = SORT_COLUMNS[SORTS[self.sort]]
        if self.order == "desc":
            return statement.order_by(column.desc(), File.id.desc())
        return statement.order_by(column, File.id)


def _scores() -> Subquery:
    """(file_id, score) of every file with a machine label: the highest confidence of its
    applied machine annotations and machine tags."""
    labels = union_all(
        select(
            Annotation.file_id.label("file_id"), Annotation.confidence.label("confidence")
        ).where(Annotation.source == "machine", Annotation.status == "applied"),
        select(Tag.file_id, Tag.confidence).where(Tag.source == "machine"),
    ).subquery()
    return (
        select(labels.c.file_id, func.max(labels.c.confidence).label("score"))
        .group_by(labels.c.file_id)
        .subquery("scores")
    )


def score() -> ColumnElement[float]:
    """A file's score: the highest confidence of its machine labels (applied annotations and
    tags), NULL without any; computed by the database for the row it sorts."""
    boxes = (
        select(func.max(Annotation.confidence))
        .where(
            Annotation.file_id == File.id,
            Annotation.source == "machine",
            Annotation.status == "applied",
        )
        .scalar_subquery()
    )
    tags = (
        select(func.max(Tag.confidence))
        .where(Tag.file_id == File.id, Tag.source == "machine")
        .scalar_subquery()
    )
    return func.greatest(boxes, tags)


@dataclass(frozen=True)
class Card:
    id: int
    name: str
    content_type: str
    width: int | None
    height: int | None
    size_bytes: int
    uploaded_at: datetime
    score: float | None  # the highest machine confidence
    position: int  # in the results, from 0


@dataclass(frozen=True)
class Facet:
    value: str
    count: int


@dataclass(frozen=True)
class Facets:
    collections: list[Facet]
    tags: list[Facet]
    labels: list[Facet]
    sources: list[Facet]  # raw (no annotation), human, machine, proposed: files with any
    days: list[Facet]  # uploaded on each UTC day (YYYY-MM-DD), the latest first
    model_versions: list[Facet]  # "name vN": files with machine labels of that version


def _selected(conditions: list[ColumnElement[bool]]) -> Select[int]:
    return select(File.id).where(*conditions)


def count(*, session: Session, conditions: list[ColumnElement[bool]]) -> int:
    return session.scalar(select(func.count()).select_from(File).where(*conditions)) or 0


def cards(
    *, session: Session, search: Search, conditions: list[ColumnElement[bool]], page: int
) -> list[Card]:
    """Page `page` (from 0) of the results: one statement."""
    names = (
        select(Collection.name)
        .join(cf, cf.c.collection_id == Collection.id)
        .where(cf.c.file_id == File.id)
        .order_by(Collection.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        search.ordered(
            select(
                File.id,
                File.unique_name,
                File.content_type,
                File.width,
                File.height,
                File.size_bytes,
                File.uploaded_at,
                names,
                score(),
            ).where(*conditions)
        )
        .offset(page * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    first = page * PAGE_SIZE
    return [
        Card(
            id=row[0],
            name=display_name(row[1], [row[7]] if row[7] else []),
            content_type=row[2],
            width=row[3],
            height=row[4],
            size_bytes=row[5],
            uploaded_at=row[6],
            score=row[8],
            position=first + index,
        )
        for index, row in enumerate(rows)
    ]


def _counted(name: Any, file_id: Any, *where: ColumnElement[bool]) -> Select[Any, int]:
    """Per value of `name`, the files having it: DISTINCT pairs hashed, then counted (a
    `count(DISTINCT ..)` per group would sort)."""
    pairs = select(name.label("value"), file_id.label("file_id")).where(*where).distinct()
    inner = pairs.subquery()
    n = func.count()
    return (
        select(inner.c.value, n)
        .group_by(inner.c.value)
        .order_by(n.desc(), inner.c.value)
        .limit(FACET_LIMIT)
    )


def facets(*, session: Session, conditions: list[ColumnElement[bool]], total: int) -> Facets:
    """The sidebar's counts over the `total` files `conditions` select: six statements, each
    grouped in the database. Without conditions nothing is joined to the selection."""

    def of(file_id: Any) -> list[ColumnElement[bool]]:
        return [file_id.in_(_selected(conditions))] if conditions else []

    def top(statement: Select[Any, int]) -> list[Facet]:
        return [Facet(row[0], row[1]) for row in session.execute(statement)]

    collections = top(
        select(Collection.name, func.count())
        .join(cf, cf.c.collection_id == Collection.id)
        .where(*of(cf.c.file_id))
        .group_by(Collection.name)
        .order_by(func.count().desc(), Collection.name)
        .limit(FACET_LIMIT)
    )
    tags = top(_counted(Tag.name, Tag.file_id, *of(Tag.file_id)))
    labels = top(
        _counted(
            Annotation.label,
            Annotation.file_id,
            Annotation.status == "applied",
            *of(Annotation.file_id),
        )
    )
    per_file = (
        select(
            func.bool_or((Annotation.status == "applied") & (Annotation.source == "human")).label(
                "human"
            ),
            func.bool_or((Annotation.status == "applied") & (Annotation.source == "machine")).label(
                "machine"
            ),
            func.bool_or(Annotation.status == "proposed").label("proposed"),
        )
        .where(*of(Annotation.file_id))
        .group_by(Annotation.file_id)
        .subquery()
    )
    annotated, human, machine, proposed = session.execute(
        select(
            func.count(),
            func.count().filter(per_file.c.human),
            func.count().filter(per_file.c.machine),
            func.count().filter(per_file.c.proposed),
        )
    ).one()
    sources = [
        Facet("raw", total - annotated),
        Facet("human", human),
        Facet("machine", machine),
        Facet("proposed", proposed),
    ]
    day = func.to_char(func.timezone("UTC", File.uploaded_at), "YYYY-MM-DD")
    days = top(
        select(day, func.count())
        .where(*conditions)
        .group_by(day)
        .order_by(day.desc())
        .limit(FACET_LIMIT)
    )
    version = func.concat(Model.name, " v", ModelVersion.version)
    pairs = union(
        select(version.label("value"), Annotation.file_id.label("file_id"))
        .join(ModelVersion, ModelVersion.id == Annotation.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Annotation.status == "applied", *of(Annotation.file_id)),
        select(version.label("value"), Tag.file_id.label("file_id"))
        .join(ModelVersion, ModelVersion.id == Tag.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(*of(Tag.file_id)),
    ).subquery()
    n = func.count()
    model_versions = top(
        select(pairs.c.value, n)
        .group_by(pairs.c.value)
        .order_by(n.desc(), pairs.c.value)
        .limit(FACET_LIMIT)
    )
    return Facets(
        collections=collections,
        tags=tags,
        labels=labels,
        sources=sources,
        days=days,
        model_versions=model_versions,
    )


@dataclass(frozen=True)
class Shape:
    id: int
    label: str
    shape: str  # box | polygon | keypoints | tag
    source: str  # human | machine
    status: str  # applied | proposed
    confidence: float | None
    box: tuple[float, float, float, float] | None  # x, y, width, height in pixels
    points: str | None  # an SVG polygon's points, in pixels


@dataclass(frozen=True)
class TagRow:
    name: str
    source: str
    confidence: float | None
    model: str | None  # "name v3"
    job_id: int | None
    threshold: float | None


@dataclass(frozen=True)
class ItemView:
    id: int
    name: str
    unique_name: str
    content_type: str
    width: int | None
    height: int | None
    size_bytes: int
    sha256: str
    uploaded_at: datetime
    metadata: dict[str, Any]
    collections: list[str]
    shapes: list[Shape]
    tags: list[TagRow]


def _shape(row: Annotation) -> Shape:
    geometry = row.geometry or {}
    box = None
    points = None
    if row.shape == "box" and {"x1", "y1", "x2", "y2"} <= geometry.keys():
        x1, y1, x2, y2 = (float(geometry[k]) for k in ("x1", "y1", "x2", "y2"))
        box = (x1, y1, x2 - x1, y2 - y1)
    elif row.shape == "polygon" and geometry.get("points"):
        points = " ".join(f"{float(p[0]):g},{float(p[1]):g}" for p in geometry["points"])
    return Shape(
        id=row.id,
        label=row.label,
        shape=row.shape,
        source=row.source,
        status=row.status,
        confidence=row.confidence,
        box=box,
        points=points,
    )


def item(*, session: Session, file_id: int) -> ItemView:
    """One file with its annotations (still images: those without a frame) and its tags with
    their provenance: four statements."""
    found = session.get(File, file_id)
    if found is None:
        raise FileNotFoundInLake(
            f"No file with id {file_id} is in the lake; go back to the gallery and pick one."
        )
    collections = list(
        session.scalars(
            select(Collection.name)
            .join(cf, cf.c.collection_id == Collection.id)
            .where(cf.c.file_id == file_id)
            .order_by(Collection.id)
        )
    )
    shapes = [
        _shape(row)
        for row in session.scalars(
            select(Annotation)
            .where(Annotation.file_id == file_id, Annotation.frame_index.is_(None))
            .order_by(Annotation.id)
        )
    ]
    threshold = Job.params["confidence_threshold"].as_float()
    tags = [
        TagRow(
            name=name,
            source=source,
            confidence=confidence,
            model=f"{model} v{version}" if model else None,
            job_id=job_id,
            threshold=job_threshold,
        )
        for name, source, confidence, model, version, job_id, job_threshold in session.execute(
            select(
                Tag.name,
                Tag.source,
                Tag.confidence,
                Model.name,
                ModelVersion.version,
                Tag.job_id,
                threshold,
            )
            .outerjoin(ModelVersion, ModelVersion.id == Tag.model_version_id)
            .outerjoin(Model, Model.id == ModelVersion.model_id)
            .outerjoin(Job, Job.id == Tag.job_id)
            .where(Tag.file_id == file_id)
            .order_by(Tag.name, Tag.id)
        )
    ]
    return ItemView(
        id=found.id,
        name=display_name(found.unique_name, collections),
        unique_name=found.unique_name,
        content_type=found.content_type,
        width=found.width,
        height=found.height,
        size_bytes=found.size_bytes,
        sha256=found.sha256,
        uploaded_at=found.uploaded_at,
        metadata=found.metadata_,
        collections=collections,
        shapes=shapes,
        tags=tags,
    )


@dataclass(frozen=True)
class Neighbours:
    previous: int | None
    next: int | None


def neighbours(
    *, session: Session, search: Search, conditions: list[ColumnElement[bool]], position: int
) -> Neighbours:
    """The files before and after the one at `position` in the results (one statement)."""
    start = max(position - 1, 0)
    ids = list(
        session.scalars(
            search.ordered(select(File.id).where(*conditions))
            .offset(start)
            .limit(3 if position > 0 else 2)
        )
    )
    at = position - start  # where the current file is in `ids`
    return Neighbours(
        previous=ids[at - 1] if at >= 1 and len(ids) > at - 1 else None,
        next=ids[at + 1] if len(ids) > at + 1 else None,
    )
