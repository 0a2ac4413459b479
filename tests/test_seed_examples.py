"""Every example call of the SDK manual's section 7 (7.1-7.8) as written: positional
arguments, the manual's model names ('test_yolov8', 'test_resnet50', 'Resnet50') and filter.

Differences, all forced: collection ids are this engine's (ints; the manual's are Mongo ids);
bundle paths are the suite's bundles; `inference_platform` is 'local' where the manual says
'aws' (no SageMaker here: the 'aws' form is checked to be refused at once, before anything is
queued, naming what to configure); the manual's "[0.23,0.56,....]" is a 2048-number vector.

The manual's query and filter (`annotation.label=Bird`, human or machine annotations, uploaded
2022-08-02..2023-01-19) select exactly one file here: its upload date is set back into the
range. A real worker runs the analysis jobs to the end.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.db.models import File
from sdk.errors import BadRequest
from tests.fixtures.plugin import (  # noqa: F401
    resnet50_random_bundle,
    resnet50_random_weights,
    shapes_detector,
    shapes_detector_bundle,
)
from tests.fixtures.shapes import scene
from tests.fixtures.worker import settings, shared_envs_dir, worker  # noqa: F401

FILTER = {
    "annotation_types": ["human", "machine"],
    "from_date": "2022-08-02",
    "to_date": "2023-01-19",
}
EXAMPLE = "example_collection_example_image.jpg"
SELECTED = "example_collection_bird_in_range.png"


def _vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(2048)]


@pytest.fixture
def example(
    client: Any,
    tmp_path: Path,
    session: Session,
    shapes_detector_bundle: Path,
    resnet50_random_bundle: Path,
) -> int:
    """Collection `example_collection`: example_image.jpg (the manual's 7.6-7.8 file) and
    three PNGs of which only bird_in_range matches the manual's query and filter."""
    folder = tmp_path / "example"
    folder.mkdir()
    scene(0, seed=5).image.convert("RGB").save(folder / "example_image.jpg", quality=90)
    for index, name in enumerate(["bird_in_range", "bird_today", "plain_in_range"]):
        scene(index + 1, seed=5).image.save(folder / f"{name}.png")
    cid = client.upload_files_to_collection(folder, "image", "example_collection")
    for name in ("example_collection_bird_in_range.png", "example_collection_bird_today.png"):
        client.add_annotations(
            name,
            [
                {
                    "label": "Bird",
                    "shape": "box",
                    "geometry": {"x1": 10, "y1": 10, "x2": 60, "y2": 60},
                }
            ],
        )
    session.execute(
        update(File)
        .where(File.unique_name.in_([SELECTED, "example_collection_plain_in_range.png"]))
        .values(uploaded_at=datetime(2022, 10, 1, 12, tzinfo=UTC))
    )
    session.commit()

    # 7.1, as written (the manual's path is its user's; the application string is its own).
    client.register_model(shapes_detector_bundle, "test_yolov8", "autotagging")
    client.register_model(resnet50_random_bundle, "test_resnet50", "embedding")
    return cid


def _submitted(job: dict[str, Any], total: int) -> tuple[int, int]:
    """The call returned at once; `total` is counted when the worker plans the job."""
    assert set(job) == {"job_id", "status", "total"}
    assert isinstance(job["job_id"], int)
    assert isinstance(job["total"], int)
    assert job["status"] == "queued"
    return int(job["job_id"]), total


def test_sections_7_2_to_7_5_as_written(
    client: Any,
    worker: Any,
    example: int,
) -> None:
    jobs = []
    # 7.2
    jobs.append(
        _submitted(
            client.auto_tag_collection(
                example,
                "test_yolov8",
                (480, 480),
                0.6,
                "annotation.label=Bird",
                {
                    "annotation_types": ["human", "machine"],
                    "from_date": "2022-08-02",
                    "to_date": "2023-01-19",
                },
                "local",
            ),
            1,
        )
    )
    # 7.3
    jobs.append(
        _submitted(
            client.generate_auto_tags_to_metalake(
                "image",
                "test_yolov8",
                (480, 480),
                0.5,
                "annotation.label=Bird",
                {
                    "annotation_types": ["human", "machine"],
                    "from_date": "2022-08-02",
                    "to_date": "2023-01-19",
                },
                "local",
            ),
            1,
        )
    )
    # 7.4
    jobs.append(
        _submitted(
            client.generate_embeddings_for_collection(
                example,
                "test_resnet50",
                "annotation.label=Bird",
                {
                    "annotation_types": ["human", "machine"],
                    "from_date": "2022-08-02",
                    "to_date": "2023-01-19",
                },
                "local",
            ),
            1,
        )
    )
    # 7.5
    jobs.append(
        _submitted(
            client.generate_embeddings_to_metalake(
                "image",
                "test_resnet50",
                "annotation.label=Bird",
                {
                    "annotation_types": ["human", "machine"],
                    "from_date": "2022-08-02",
                    "to_date": "2023-01-19",
                },
                "local",
            ),
            1,
        )
    )
    # The manual's collection ids are strings: a numeric string is the same collection.
    jobs.append(
        _submitted(
            client.auto_tag_collection(
                str(example),
                "test_yolov8",
                (480, 480),
                0.6,
                "annotation.label=Bird",
                FILTER,
                "local",
            ),
            1,
        )
    )
    # Keyword forms: the tables' model_id, the signatures' model_name.
    jobs.append(
        _submitted(
            client.auto_tag_collection(
                example,
                model_id="test_yolov8",
                input_resolution=(480, 480),
                confidence_threshold=0.6,
                query="annotation.label=Bird",
                filter=FILTER,
                inference_platform="local",
            ),
            1,
        )
    )
    jobs.append(
        _submitted(
            client.generate_auto_tags_to_metalake(
                "image",
                model_name="test_yolov8",
                input_resolution=(480, 480),
                query="",
                filter=None,
                inference_platform="local",
            ),
            4,
        )
    )
    jobs.append(
        _submitted(
            client.generate_embeddings_for_collection(
                example,
                model_name="test_resnet50",
                query="annotation.label=Bird",
                filter=FILTER,
                inference_platform="local",
            ),
            1,
        )
    )
    jobs.append(
        _submitted(
            client.generate_embeddings_to_metalake(
                "image",
                model_id="test_resnet50",
                query="annotation.label=Bird",
                filter=FILTER,
                inference_platform="local",
            ),
            1,
        )
    )

    for job_id, total in jobs:
        final = client.wait_for_job(job_id, timeout=240, progress=False)
        assert final["status"] == "succeeded", final
        assert (final["total"], final["done"], final["failed"]) == (total, total, 0), final
    [vector] = client.get_embedding_vector([SELECTED], "test_resnet50")
    assert len(vector["embeddings"]) == 2048
    [other] = client.get_embedding_vector(["example_collection_bird_today.png"], "test_resnet50")
    assert other["embeddings"] is None  # outside the manual's date range


def test_aws_as_written_is_refused_at_once_when_aws_is_not_configured(
    client: Any, example: int
) -> None:
    with pytest.raises(BadRequest) as caught:
        client.auto_tag_collection(
            example,
            "test_yolov8",
            (480, 480),
            0.6,
            "annotation.label=Bird",
            {
                "annotation_types": ["human", "machine"],
                "from_date": "2022-08-02",
                "to_date": "2023-01-19",
            },
            "aws",
        )
    assert "METALAKE_" in caught.value.message
    assert "inference_platform='local'" in caught.value.message
    assert client.list_jobs() == []


def test_sections_7_6_to_7_8_as_written(client: Any, example: int) -> None:
    vector = _vector(1)
    # 7.6
    result = client.insert_image_embeddings_batch(
        [{"uniqueName": "example_collection_example_image.jpg", "embeddings": vector}],
        "Resnet50",
        [2048],
        "",
    )
    assert (result["space"], result["written"]) == ("Resnet50", 1)
    # 7.7
    again = _vector(2)
    result = client.insert_image_embeddings(
        [{"uniqueName": "example_collection_example_image.jpg", "embeddings": again}],
        "Resnet50",
        [2048],
    )
    assert result["written"] == 1
    # 7.8
    [got] = client.get_embedding_vector(["example_collection_example_image.jpg"], "Resnet50")
    assert got["uniqueName"] == EXAMPLE
    assert np.allclose(got["embeddings"], again, atol=2e-3)  # stored as halfvec

    # Keyword forms.
    client.insert_image_embeddings_batch(
        embedding_list=[{"uniqueName": EXAMPLE, "embeddings": vector}],
        model_id="Resnet50",
        vector_dimension=[2048],
        session_id="",
    )
    client.insert_image_embeddings(
        embedding_list=[{"uniqueName": EXAMPLE, "embeddings": vector}],
        model_name="Resnet50",
        vector_dimension=[2048],
    )
    [by_id] = client.get_embedding_vector([EXAMPLE], model_id="Resnet50")
    [by_name] = client.get_embedding_vector(unique_names=[EXAMPLE], model_name="Resnet50")
    assert by_id == by_name
    assert np.allclose(by_id["embeddings"], vector, atol=2e-3)
