"""Writing probed files into the lake: bulk upserts, collection links and the failure record.

Everything runs in the caller's transaction (one per ingest request); upserts on `unique_name`
make a retried request idempotent, and a file is never repointed to another request's bytes
when unique names collide. How: docs/architecture.md, "Ingest".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Table, and_, case, exists, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from engine.db.models import Collection, File, IngestFailure, collection_files
from engine.lake.probe import Probe
from sdk.schemas import IngestFailurePublic, IngestReport

_ROWS_PER_STATEMENT = 1000  # 11 parameters a row stays far below PostgreSQL's 65,535
T = TypeVar("T")


def unique_name(collection_name: str, relative_path: str) -> str:
    """`<collection name>_<relative path with / replaced by _>`."""
    return f"{collection_name}_{relative_path.strip('/').replace('/', '_')}"


@dataclass(frozen=True)
class Probed:
    """A file ready to register: where it came from, where it is stored, what it is."""

    relative_path: str
    source: str  # shown in failures: the path or URI the user gave
    storage_uri: str
    probe: Probe


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(session: Session, collection_id: int, names: list[str]) -> dict[str, Any]:
    in_collection = exists().where(
        collection_files.c.file_id == File.id, collection_files.c.collection_id == collection_id
    )
    rows = session.execute(
        select(
            File.unique_name,
            File.sha256,
            File.size_bytes,
            File.storage_uri,
            File.metadata_,
            in_collection.label("linked"),
        ).where(File.unique_name.in_(names))
    )
    return {row.unique_name: row for row in rows}


def register(
    *,
    session: Session,
    collection: Collection,
    probed: Sequence[Probed],
    failures: Sequence[IngestFailurePublic],
    metadata: dict[str, Any],
) -> IngestReport:
    """Upsert `probed` into `files`, link them to `collection`, record `failures`."""
    failed = list(failures)
    by_name: dict[str, Probed] = {}
    for item in probed:
        name = unique_name(collection.name, item.relative_path)
        first = by_name.get(name)
        if first is not None:
            failed.append(
                IngestFailurePublic(
                    path=item.source,
                    # the relative path: reasons are shown to read keys, full paths are not
                    reason=f"its unique name {name!r} is also the name of {first.relative_path!r} "
                    "in this upload; rename one of them (a / and a _ in the same place give "
                    "the same name)",
                )
            )
            continue
        by_name[name] = item

    existing = {}
    for names in _chunks(list(by_name), _ROWS_PER_STATEMENT):
        existing.update(_existing(session, collection.id, list(names)))

    rows: list[dict[str, Any]] = []
    added = updated = unchanged = 0
    for name, item in by_name.items():
        old = existing.get(name)
        if old is not None and not old.linked:
            failed.append(
                IngestFailurePublic(
                    path=item.source,
                    reason=f"the unique name {name!r} already belongs to a file of another "
                    "collection; use another collection name or rename the file",
                )
            )
            continue
        probe = item.probe
        if old is None:
            added += 1
        elif (
            old.sha256 == probe.sha256
            and old.size_bytes == probe.size_bytes
            and old.storage_uri == item.storage_uri
            and {**old.metadata_, **metadata} == old.metadata_
        ):
            unchanged += 1  # already linked; nothing to write
            continue
        else:
            updated += 1
        rows.append(
            {
                "unique_name": name,
                "storage_uri": item.storage_uri,
                "sha256": probe.sha256,
                "size_bytes": probe.size_bytes,
                "content_type": collection.content_type,
                "width": probe.width,
                "height": probe.height,
                "fps": probe.fps,
                "frame_count": probe.frame_count,
                "metadata": metadata,
            }
        )

    written = _upsert(session, rows, collection.id)
    for row in rows:
        name = row["unique_name"]
        if name in written:
            continue
        if name in existing:
            updated -= 1
        else:
            added -= 1
        failed.append(
            IngestFailurePublic(
                path=by_name[name].source,
                reason=f"the unique name {name!r} was taken by a file of another collection (or "
                "other bytes of another request) while this request ran; the lake keeps "
                "that file. Use another collection name or rename the file, or retry if "
                "the other request was an ingest into this same collection",
            )
        )
    file_ids = list(written.values())
    for ids in _chunks(file_ids, _ROWS_PER_STATEMENT * 5):
        session.execute(
            insert(collection_files)
            .values([{"collection_id": collection.id, "file_id": fid} for fid in ids])
            .on_conflict_do_nothing()
        )
    for chunk in _chunks(failed, _ROWS_PER_STATEMENT):
        session.execute(
            insert(IngestFailure).values(
                [
                    {"collection_id": collection.id, "path": f.path, "reason": f.reason}
                    for f in chunk
                ]
            )
        )
    return IngestReport(
        collection_id=collection.id,
        added=added,
        updated=updated,
        unchanged=unchanged,
        failed=failed,
    )


def _upsert(session: Session, rows: list[dict[str, Any]], collection_id: int) -> dict[str, int]:
    """Insert or update `rows` by unique name; returns {unique name: file id} of those written.

    On conflict the bytes' facts are replaced, the upload's metadata is merged over the file's
    (`||`: its keys win, other keys stay), and `uploaded_at` moves only if the bytes changed;
    but only for a file already in `collection_id`, or one at the same place with the same
    bytes (a concurrent identical ingest). Any other conflict (a colliding unique name written
    by another request since `_existing` looked) writes nothing and is missing from the result.
    """
    table = cast(Table, File.__table__)
    written: dict[str, int] = {}
    # `files.id` of the conflicting row, written out: SQLAlchemy does not correlate a subquery
    # of ON CONFLICT's WHERE with the insert's table and would add its own `FROM files`.
    in_collection = exists().where(
        collection_files.c.file_id == literal_column("files.id"),
        collection_files.c.collection_id == collection_id,
    )
    for chunk in _chunks(rows, _ROWS_PER_STATEMENT):
        values = insert(table).values(list(chunk))
        new = values.excluded
        same_bytes = and_(table.c.sha256 == new.sha256, table.c.size_bytes == new.size_bytes)
        stmt = values.on_conflict_do_update(
            index_elements=[table.c.unique_name],
            set_={
                "storage_uri": new.storage_uri,
                "sha256": new.sha256,
                "size_bytes": new.size_bytes,
                "width": new.width,
                "height": new.height,
                "fps": new.fps,
                "frame_count": new.frame_count,
                "uploaded_at": case((same_bytes, table.c.uploaded_at), else_=func.now()),
                "metadata": table.c.metadata.op("||")(new.metadata),
            },
            where=or_(in_collection, and_(same_bytes, table.c.storage_uri == new.storage_uri)),
        ).returning(table.c.unique_name, table.c.id)
        written.update({name: fid for name, fid in session.execute(stmt).all()})
    return written
