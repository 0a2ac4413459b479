"""The annotation formats on their own: parsing, geometry, matching (no database)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidAnnotations
from engine.lake.formats import coco, metalake_json, yolo
from engine.lake.formats.geometry import to_geometry
from engine.lake.formats.matching import FileIndex, LakeFile
from engine.lake.formats.parsed import ParsedAnnotation, ParsedImage, Problems


def geometry(ann: ParsedAnnotation, width: int | None = 640, height: int | None = 480) -> dict:
    problems = Problems("test")
    result = to_geometry(ann, width=width, height=height, image="img", problems=problems)
    problems.raise_if_any()
    assert result is not None
    return result


# -- MetaLake JSON --------------------------------------------------------------------------------
def test_bbox_is_xywh_and_polygons_take_both_forms() -> None:
    images = metalake_json.parse(
        {
            "images": [
                {
                    "image": "a.jpg",
                    "annotations": [
                        {
                            "bbox": [10, 20, 100, 50],
                            "label": " Bird ",
                            "confidence": 0.5,
                            "metadata": {"k": 1},
                        },
                        {"bbox": [0, 0, 1, 1], "label": "Cat"},
                    ],
                },
                {"image": "b.jpg"},
            ]
        },
        shape_type="rectangle",
        normalized=False,
    )
    assert [i.key for i in images] == ["a.jpg", "b.jpg"]
    first = images[0].annotations[0]
    assert (first.label, first.shape, first.confidence, first.metadata) == (
        "Bird",
        "box",
        0.5,
        {"k": 1},
    )
    assert geometry(first) == {"x1": 10, "y1": 20, "x2": 110, "y2": 70}
    assert images[1].annotations == []

    nested, flat = (
        metalake_json.parse(
            {"images": [{"image": "a.jpg", "annotations": [{"polygon": points, "label": "x"}]}]},
            shape_type="polygon",
            normalized=False,
        )
        for points in ([[1, 2], [30, 2], [15, 40]], [1, 2, 30, 2, 15, 40])
    )
    assert (
        nested[0].annotations[0].values
        == flat[0].annotations[0].values
        == ((1, 2), (30, 2), (15, 40))
    )


@pytest.mark.parametrize(
    ("document", "location", "field", "words"),
    [
        ({"images": {}}, "$", "images", "must be an object like"),
        ([1, 2], "$", "images", "must be an object like"),
        ({"images": [{"annotations": []}]}, "images[0]", "image", "path or file name"),
        (
            {"images": [{"image": "a", "annotations": [{"bbox": [1, 2, 3], "label": "x"}]}]},
            "images[0].annotations[0]",
            "bbox",
            "4 numbers",
        ),
        (
            {"images": [{"image": "a", "annotations": [{"bbox": [1, 2, 0, 3], "label": "x"}]}]},
            "images[0].annotations[0]",
            "bbox",
            "must be > 0",
        ),
        (
            {"images": [{"image": "a", "annotations": [{"bbox": [1, 2, 3, 4], "label": ""}]}]},
            "images[0].annotations[0]",
            "label",
            "non-empty",
        ),
        (
            {
                "images": [
                    {
                        "image": "a",
                        "annotations": [{"bbox": [1, 2, 3, 4], "label": "x", "confidence": 1.5}],
                    }
                ]
            },
            "images[0].annotations[0]",
            "confidence",
            "between 0 and 1",
        ),
        (
            {
                "images": [
                    {"image": "a"},
                    {"image": "b", "annotations": [{"polygon": [[1, 2], [3, 4]], "label": "x"}]},
                ]
            },
            "images[1].annotations[0]",
            "bbox",
            'needs "bbox"',
        ),
    ],
)
def test_invalid_documents_name_the_location_and_field(
    document: object, location: str, field: str, words: str
) -> None:
    with pytest.raises(InvalidAnnotations) as caught:
        metalake_json.parse(document, shape_type="box", normalized=False)
    assert caught.value.details["location"] == location
    assert caught.value.details["field"] == field
    assert words in caught.value.message
    assert "nothing was written" in caught.value.message


def test_every_problem_is_listed_with_indexes() -> None:
    document = {
        "images": [
            {
                "image": "a",
                "annotations": [
                    {"bbox": [1, 2, 3, 4], "label": "ok"},
                    {"bbox": [1, 2, 3, 4], "label": 7},
                    {"bbox": "x", "label": "y"},
                ],
            }
        ]
    }
    with pytest.raises(InvalidAnnotations) as caught:
        metalake_json.parse(document, shape_type="box", normalized=False)
    details = caught.value.details
    assert (details["image_index"], details["annotation_index"]) == (0, 1)
    assert [e["location"] for e in details["errors"]] == [
        "images[0].annotations[1]",
        "images[0].annotations[2]",
    ]
    assert "1 more problem" in caught.value.message


def test_mixed_shapes_take_each_annotations_own_key() -> None:
    images = metalake_json.parse(
        {
            "images": [
                {
                    "image": "a",
                    "annotations": [
                        {"bbox": [1, 2, 3, 4], "label": "b"},
                        {"polygon": [1, 2, 3, 4, 5, 9], "label": "p"},
                        {"keypoints": [[1, 2, 2], [0, 0, 0]], "label": "k"},
                        {"label": "whole image"},
                    ],
                }
            ]
        },
        shape_type="mixed",
        normalized=False,
    )
    assert [a.shape for a in images[0].annotations] == ["box", "polygon", "keypoints", "tag"]


# -- geometry -------------------------------------------------------------------------------------
def test_normalized_coordinates_scale_by_the_image_size() -> None:
    [image] = metalake_json.parse(
        {
            "images": [
                {
                    "image": "a",
                    "annotations": [
                        {"bbox": [0.25, 0.5, 0.5, 0.25], "label": "b"},
                        {"polygon": [[0, 0], [1, 0], [0.5, 1]], "label": "p"},
                    ],
                }
            ]
        },
        shape_type="mixed",
        normalized=True,
    )
    box, polygon = image.annotations
    assert geometry(box, 640, 480) == {"x1": 160, "y1": 240, "x2": 480, "y2": 360}
    assert geometry(polygon, 640, 480) == {"points": [[0, 0], [640, 0], [320, 480]]}


def test_coordinates_just_outside_are_clamped_and_further_out_refused() -> None:
    def box(
        x1: float, y1: float, x2: float, y2: float, normalized: bool = False
    ) -> ParsedAnnotation:
        return ParsedAnnotation(
            where="a",
            field="bbox",
            label="x",
            shape="box",
            values=((x1, y1, x2, y2),),
            normalized=normalized,
        )

    assert geometry(box(-0.5, 0, 640.6, 480)) == {"x1": 0, "y1": 0, "x2": 640, "y2": 480}
    assert geometry(box(0, 0, 1.0004, 1, normalized=True)) == {
        "x1": 0,
        "y1": 0,
        "x2": 640,
        "y2": 480,
    }
    with pytest.raises(InvalidAnnotations, match=r"outside the 640x480 image.*is_normalized"):
        geometry(box(10, 10, 700, 20))
    with pytest.raises(InvalidAnnotations, match=r"outside 0\.\.1"):
        geometry(box(0.1, 0.1, 1.2, 0.5, normalized=True))
    with pytest.raises(InvalidAnnotations, match="does not know the size"):
        geometry(box(0.1, 0.1, 0.2, 0.2, normalized=True), None, None)
    with pytest.raises(InvalidAnnotations, match="x1 < x2"):
        geometry(box(-0.8, 0, -0.2, 10))  # both clamp onto x = 0
    # Pixel boxes on an image of unknown size are not bounded.
    assert geometry(box(10, 10, 5000, 20), None, None)["x2"] == 5000


# -- COCO -----------------------------------------------------------------------------------------
COCO = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
        {"id": 2, "file_name": "sub/b.jpg"},
    ],
    "categories": [
        {"id": 3, "name": "cat"},
        {"id": 4, "name": "person", "keypoints": ["nose", "eye"]},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "score": 0.8},
        {
            "id": 11,
            "image_id": 2,
            "category_id": 4,
            "bbox": [0, 0, 50, 50],
            "segmentation": [[0, 0, 50, 0, 50, 50], [60, 60, 70, 60, 70, 70]],
            "keypoints": [5, 6, 2, 0, 0, 0],
            "num_keypoints": 1,
        },
        {
            "id": 12,
            "image_id": 1,
            "category_id": 3,
            "bbox": [1, 1, 5, 5],
            "iscrowd": 1,
            "segmentation": {"counts": "abc", "size": [480, 640]},
        },
    ],
}


def test_coco_boxes_polygons_and_keypoints() -> None:
    images = {i.key: i for i in coco.parse(COCO)}
    assert images["a.jpg"].declared_size == (640, 480)
    box, crowd = images["a.jpg"].annotations
    assert (box.label, box.shape, box.confidence, box.metadata) == (
        "cat",
        "box",
        0.8,
        {"coco_id": 10},
    )
    assert geometry(box) == {"x1": 10, "y1": 20, "x2": 40, "y2": 60}
    assert crowd.shape == "box"
    assert crowd.metadata["iscrowd"] == 1
    ring1, ring2, keypoints = images["sub/b.jpg"].annotations
    assert (ring1.shape, ring2.shape, keypoints.shape) == ("polygon", "polygon", "keypoints")
    assert ring2.values == ((60, 60), (70, 60), (70, 70))
    assert ring1.metadata == {"coco_id": 11, "coco_bbox": [0, 0, 50, 50]}
    assert keypoints.values == ((5, 6, 2), (0, 0, 0))
    assert keypoints.metadata["keypoint_names"] == ["nose", "eye"]


def test_coco_errors_name_the_annotation() -> None:
    broken = {
        **COCO,
        "annotations": [
            *COCO["annotations"],
            {"id": 13, "image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1]},
        ],
    }
    with pytest.raises(InvalidAnnotations) as caught:
        coco.parse(broken)
    assert caught.value.details["location"] == "annotations[3]"
    assert caught.value.details["annotation_index"] == 3
    assert caught.value.details["field"] == "category_id"
    with pytest.raises(InvalidAnnotations, match="bare results list"):
        coco.parse([{"image_id": 1, "bbox": [0, 0, 1, 1]}])


# -- YOLO -----------------------------------------------------------------------------------------
def test_yolo_class_names_from_each_source() -> None:
    assert yolo.class_names(names=["a", "b"], data_yaml=None, classes_txt=None) == {0: "a", 1: "b"}
    assert yolo.class_names(names=None, data_yaml="names: [cat, dog]\n", classes_txt=None) == {
        0: "cat",
        1: "dog",
    }
    assert yolo.class_names(
        names=None, data_yaml="names:\n  0: cat\n  2: dog\n", classes_txt="ignored"
    ) == {0: "cat", 2: "dog"}
    assert yolo.class_names(names=None, data_yaml=None, classes_txt="cat\n\ndog\n") == {
        0: "cat",
        1: "dog",
    }
    with pytest.raises(InvalidAnnotations, match=r"data\.yaml"):
        yolo.class_names(names=None, data_yaml=None, classes_txt=None)


def test_yolo_lines() -> None:
    [image] = yolo.parse(
        {"labels/train/a.txt": "0 0.5 0.5 0.5 0.25\n\n1 0.5 0.5 0.2 0.2 0.9\n1 0 0 1 0 0.5 1\n"},
        names={0: "cat", 1: "dog"},
    )
    assert (image.key, image.match) == ("labels/train/a", "stem")
    box, scored, polygon = image.annotations
    assert geometry(box, 640, 480) == {"x1": 160, "y1": 180, "x2": 480, "y2": 300}
    assert (scored.label, scored.confidence) == ("dog", 0.9)
    assert geometry(polygon, 640, 480) == {"points": [[0, 0], [640, 0], [320, 480]]}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("5 0.5 0.5 0.1 0.1", "class"),
        ("0 0.5 0.5 0.1", "line"),
        ("0 a 0.5 0.1 0.1", "line"),
        ("0 0.5 0.5 0 0.1", "box"),
        ("0 0.5 0.5 0.1 0.1 3", "confidence"),
    ],
)
def test_yolo_errors_name_file_and_line(line: str, field: str) -> None:
    with pytest.raises(InvalidAnnotations) as caught:
        yolo.parse({"a.txt": f"0 0.5 0.5 0.1 0.1\n{line}\n"}, names={0: "cat"})
    assert caught.value.details["location"] == "a.txt:2"
    assert caught.value.details["field"] == field


# -- matching -------------------------------------------------------------------------------------
def index(*names: str) -> FileIndex:
    return FileIndex("c", [LakeFile(i, n, 10, 10) for i, n in enumerate(names)])


def matched(files: FileIndex, key: str, match: str = "path") -> str | None:
    outcome, found = files.match(ParsedImage(where="x", key=key, match=match))  # type: ignore[arg-type]
    return found.unique_name if found else outcome


def test_paths_match_by_unique_name_rule_then_tails_then_as_unique_names() -> None:
    files = index("c_a.jpg", "c_sub_b.jpg", "other_z.jpg", "c_my_a.jpg")
    assert matched(files, "a.jpg") == "c_a.jpg"
    assert matched(files, "sub/b.jpg") == "c_sub_b.jpg"
    assert matched(files, ".\\sub\\b.jpg") == "c_sub_b.jpg"
    assert matched(files, "images/sub/b.jpg") == "c_sub_b.jpg"
    assert matched(files, "other_z.jpg") == "other_z.jpg"
    assert matched(files, "b.jpg") == "c_sub_b.jpg"  # a bare file name, in its subfolder
    assert matched(files, "my/a.jpg") == "c_my_a.jpg"
    assert matched(files, "z.jpg") == "unknown"  # only the collection's own files
    twice = index("c_x_b.jpg", "c_y_b.jpg", "c_y_d.jpg")
    assert matched(twice, "b.jpg") == "ambiguous"  # two subfolders hold one: not guessed
    assert matched(twice, "d.jpg") == "c_y_d.jpg"
    assert matched(twice, "q/d.jpg") == "unknown"  # a path with a folder is never shortened


def test_yolo_stems_match_images_of_any_extension() -> None:
    files = index("c_train_a.jpg", "c_images_val_b.png", "c_x.jpg", "c_x.png")
    assert matched(files, "labels/train/a", "stem") == "c_train_a.jpg"
    assert matched(files, "labels/val/b", "stem") == "c_images_val_b.png"
    assert matched(files, "x", "stem") == "ambiguous"
    assert matched(files, "nope", "stem") == "unknown"
