"""Turning validated model outputs into lake rows, written inside the chunk's transaction.

Coordinates come back from the model in the pixel space of the resized image it was sent;
they are scaled to the original image. Writing replaces the model version's earlier machine
results for those files (delete, then insert) and leaves other versions' and human rows alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from engine.db.models import Annotation, Tag
from engine.hosting.contract import AnnotationOutput, TagPrediction
from engine.jobs.media import Frame
from sdk.schemas import PromptEntry


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    output: Any  # TagPrediction | AnnotationOutput | EmbeddingOutput


def _scale(frame: Frame, input_size: tuple[int, int]) -> tuple[float, float]:
    (ow, oh), (iw, ih) = frame.original_size, input_size
    return ow / iw, oh / ih


def _clip_box(
    x1: float, y1: float, x2: float, y2: float, size: tuple[int, int]
) -> dict[str, float]:
    w, h = size
    return {
        "x1": round(min(max(x1, 0.0), w), 2),
        "y1": round(min(max(y1, 0.0), h), 2),
        "x2": round(min(max(x2, 0.0), w), 2),
        "y2": round(min(max(y2, 0.0), h), 2),
    }


def autotag_rows(
    file_id: int,
    results: Sequence[FrameResult],
    *,
    labels: list[str] | None,
    threshold: float,
    input_size: tuple[int, int],
    version_id: int,
    job_id: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tags, annotations) of one file: one tag per label (highest confidence over the file's
    frames) and one machine box per detection at or above the threshold."""
    best: dict[str, float] = {}
    annotations: list[dict[str, Any]] = []
    for result in results:
        prediction: TagPrediction = result.output
        sx, sy = _scale(result.frame, input_size)
        for box in prediction.boxes:
            if box.confidence < threshold:
                continue
            label = (
                labels[box.class_id] if labels and box.class_id < len(labels) else str(box.class_id)
            )
            best[label] = max(best.get(label, 0.0), box.confidence)
            annotations.append(
                {
                    "file_id": file_id,
                    "frame_index": result.frame.frame_index,
                    "label": label,
                    "shape": "box",
                    "source": "machine",
                    "status": "applied",
                    "geometry": _clip_box(
                        box.x1 * sx,
                        box.y1 * sy,
                        box.x2 * sx,
                        box.y2 * sy,
                        result.frame.original_size,
                    ),
                    "confidence": box.confidence,
                    "model_version_id": version_id,
                    "job_id": job_id,
                }
            )
    tags = [
        {
            "file_id": file_id,
            "name": name,
            "source": "machine",
            "confidence": conf,
            "model_version_id": version_id,
            "job_id": job_id,
        }
        for name, conf in best.items()
    ]
    return tags, annotations


def _label_for(phrase: str, prompt: Sequence[PromptEntry]) -> str:
    """The prompt label a detected phrase belongs to (exact, then contained, then the phrase)."""
    text = phrase.strip().lower()
    for entry in prompt:
        if text in (entry.description.lower(), entry.label.lower()):
            return entry.label
    for entry in sorted(prompt, key=lambda e: -len(e.description)):
        description = entry.description.lower()
        if text and (text in description or description in text):
            return entry.label
    return phrase.strip() or "object"


def annotation_rows(
    file_id: int,
    results: Sequence[FrameResult],
    *,
    prompt: Sequence[PromptEntry],
    threshold: float,
    annotation_type: str,
    preview: bool,
    input_size: tuple[int, int],
    version_id: int,
    job_id: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for result in results:
        output: AnnotationOutput = result.output
        sx, sy = _scale(result.frame, input_size)
        size = result.frame.original_size
        masks = output.masks or [None] * len(output.boxes)
        for box, mask, logit, phrase in zip(
            output.boxes, masks, output.logits, output.phrases, strict=True
        ):
            if logit < threshold:
                continue
            common = {
                "file_id": file_id,
                "frame_index": result.frame.frame_index,
                "label": _label_for(phrase, prompt),
                "source": "machine",
                "status": "proposed" if preview else "applied",
                "confidence": min(max(logit, 0.0), 1.0),
                "model_version_id": version_id,
                "job_id": job_id,
            }
            if annotation_type == "polygon" and mask and len(mask) >= 3:
                points = [
                    [
                        round(min(max(x * sx, 0.0), size[0]), 2),
                        round(min(max(y * sy, 0.0), size[1]), 2),
                    ]
                    for x, y in mask
                ]
                rows.append({**common, "shape": "polygon", "geometry": {"points": points}})
            else:
                x1, y1, x2, y2 = box
                rows.append(
                    {
                        **common,
                        "shape": "box",
                        "geometry": _clip_box(x1 * sx, y1 * sy, x2 * sx, y2 * sy, size),
                    }
                )
    return rows


def replace_machine_results(
    session: Session,
    *,
    file_ids: Sequence[int],
    version_id: int,
    tags: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    annotation_status: str | None = None,
) -> None:
    """Replace this version's machine tags and annotations of `file_ids` (one transaction)."""
    if not file_ids:
        return
    session.execute(
        delete(Tag).where(
            Tag.file_id.in_(file_ids), Tag.source == "machine", Tag.model_version_id == version_id
        )
    )
    where = [
        Annotation.file_id.in_(file_ids),
        Annotation.source == "machine",
        Annotation.model_version_id == version_id,
    ]
    if annotation_status is not None:
        where.append(Annotation.status == annotation_status)
    session.execute(delete(Annotation).where(*where))
    if tags:
        statement = pg_insert(Tag).values(tags)
        session.execute(
            statement.on_conflict_do_update(
                constraint="uq_tags_file_id_name_source_model_version_id",
                set_={
                    "confidence": statement.excluded.confidence,
                    "job_id": statement.excluded.job_id,
                },
            )
        )
    if annotations:
        session.execute(insert(Annotation), annotations)
