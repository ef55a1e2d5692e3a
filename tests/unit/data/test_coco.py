import json

import numpy as np
import pytest

from lightdet.data.coco import read_coco
from lightdet.data.records import AnnotationError
from lightdet.data.shapes import ShapesSpec, ensure_shapes
from lightdet.data.sources import COCOSource, ShapesSource
from lightdet.data.voc import read_voc


def _write(tmp_path, data) -> tuple:
    (tmp_path / "annotations").mkdir(exist_ok=True)
    path = tmp_path / "annotations" / "instances_train.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "train"


def _coco(**changes):
    data = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 9, "file_name": "b.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 42, "bbox": [1, 2, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [5, 5, 4, 4], "iscrowd": 1},
        ],
        "categories": [
            {"id": 42, "name": "triangle"},
            {"id": 3, "name": "circle"},
            {"id": 7, "name": "square"},
        ],
    }
    data.update(changes)
    return data


def test_non_contiguous_category_ids_map_to_one_based_labels(tmp_path):
    records, names, category_map = read_coco(*_write(tmp_path, _coco()))
    assert names == ["circle", "square", "triangle"]  # sorted by category id
    assert category_map == {3: 1, 7: 2, 42: 3}
    first, second = records
    assert first.image_id == 7 and first.labels.tolist() == [3, 1]
    assert first.boxes.tolist() == [[1, 2, 11, 22], [5, 5, 9, 9]]  # xywh -> xyxy
    assert first.iscrowd.tolist() == [False, True]
    assert second.boxes.shape == (0, 4)  # images without annotations are kept


def test_generated_coco_reads_back_like_generated_voc(tmp_path):
    spec = ShapesSpec(
        num_train=10, num_val=2, image_size=96, max_object_size=48.0, coco_category_ids=(3, 7, 42)
    )
    root = ensure_shapes(tmp_path / "s", spec)
    voc = read_voc(root / "VOC", "train", spec.classes)
    coco, names, category_map = read_coco(
        root / "COCO/annotations/instances_train.json", root / "COCO/train"
    )
    assert names == list(spec.classes) and category_map == {3: 1, 7: 2, 42: 3}
    assert [r.image_id for r in coco] == [r.image_id for r in voc]
    for v, c in zip(voc, coco):
        np.testing.assert_allclose(c.boxes, v.boxes, atol=0.02)
        assert c.labels.tolist() == v.labels.tolist()
        assert c.image_path.read_bytes() == v.image_path.read_bytes()


def test_shapes_source_serves_both_formats_with_the_same_classes(tmp_path):
    kwargs = {"num_train": 4, "num_val": 2, "image_size": 64, "max_object_size": 32.0}
    voc = ShapesSource(tmp_path / "s", format="voc", **kwargs)
    coco = ShapesSource(tmp_path / "s", format="coco", **kwargs)
    voc.prepare()
    assert voc.class_names == coco.class_names == ["circle", "square", "triangle"]
    assert len(voc.records("train")) == len(coco.records("train")) == 4
    assert voc.records("test") is None


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"annotations": [{"id": 1, "image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1]}]},
            r"annotations\[0\].image_id: unknown image id 99",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [0, 0, 1, 1]}]},
            r"annotations\[0\].category_id: unknown category 5",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.jpg", "width": 1, "height": 1}] * 2,
                "annotations": [],
            },
            r"images\[1\].id: duplicate image id 1",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "../../etc/x.jpg", "width": 1, "height": 1}],
                "annotations": [],
            },
            r"images\[0\].file_name: '../../etc/x.jpg' resolves outside",
        ),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, changes, message):
    path, images = _write(tmp_path, _coco(**changes))
    with pytest.raises(AnnotationError, match=rf"instances_train.json: {message}"):
        read_coco(path, images)


def test_missing_sections_and_bad_json_are_errors(tmp_path):
    path, images = _write(tmp_path, {"images": []})
    with pytest.raises(AnnotationError, match="categories: missing"):
        read_coco(path, images)
    path.write_text('{"images": [')
    with pytest.raises(AnnotationError, match=r"malformed JSON \(line 1"):
        read_coco(path, images)


def test_coco_source_requires_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances_train2017.json"):
        COCOSource(tmp_path).prepare()
