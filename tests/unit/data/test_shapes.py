import json

import numpy as np
import pytest

from lightdet.data.shapes import ShapesSpec, draw_sample, ensure_shapes
from lightdet.data.voc import read_voc
from lightdet.outputs import MARKER, ForeignFolderError
from tests.conftest import snapshot

SPEC = ShapesSpec(num_train=12, num_val=4, image_size=96, max_object_size=48.0, empty_fraction=0.2)


def _fingerprint(root):
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name not in ("lightdet_shapes.json", ".lightdet")
    )
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = _fingerprint(ensure_shapes(tmp_path / "a", SPEC))
    b = _fingerprint(ensure_shapes(tmp_path / "b", SPEC))
    c = _fingerprint(ensure_shapes(tmp_path / "c", ShapesSpec(**{**SPEC.__dict__, "seed": 1})))
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_reused_when_unchanged_regenerated_when_parameters_change(tmp_path):
    root = ensure_shapes(tmp_path / "s", SPEC)
    marker = root / "VOC" / "JPEGImages" / "000001.jpg"
    mtime = marker.stat().st_mtime_ns
    ensure_shapes(root, SPEC)
    assert marker.stat().st_mtime_ns == mtime  # reused
    ensure_shapes(root, ShapesSpec(**{**SPEC.__dict__, "num_train": 6}))
    assert json.loads((root / "lightdet_shapes.json").read_text())["num_train"] == 6
    assert len((root / "VOC/ImageSets/Main/train.txt").read_text().split()) == 6
    assert not (root.parent / "s.tmp").exists()


def test_written_layouts_are_real_voc_and_coco(tmp_path):
    root = ensure_shapes(tmp_path / "s", SPEC)
    for rel in (
        "VOC/JPEGImages",
        "VOC/Annotations",
        "VOC/ImageSets/Main/train.txt",
        "VOC/ImageSets/Main/val.txt",
        "COCO/annotations/instances_train.json",
        "COCO/annotations/instances_val.json",
        "COCO/train",
        "COCO/val",
    ):
        assert (root / rel).exists(), rel
    assert not (root / "VOC/ImageSets/Main/test.txt").exists()  # num_test = 0


def test_objects_cover_small_to_large_with_empty_images():
    rng = np.random.default_rng(0)
    spec = ShapesSpec(image_size=192)
    sides, empty = [], 0
    for _ in range(200):
        image, boxes, labels = draw_sample(rng, spec)
        assert image.size == (192, 192)
        assert boxes.dtype == np.float32 and labels.dtype == np.int64
        assert ((boxes >= 0) & (boxes <= 192)).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert set(labels.tolist()) <= {1, 2, 3}
        sides += (boxes[:, 2] - boxes[:, 0]).tolist()
        empty += len(boxes) == 0
    sides = np.array(sides)
    assert (sides < 16).mean() > 0.1 and (sides > 48).mean() > 0.1 and sides.min() >= 8
    assert 2 <= empty <= 25


def test_boxes_read_back_match_the_drawn_pixels(tmp_path):
    """The annotation is tight: the shape's colour fills the box centre, not the area outside."""
    root = ensure_shapes(
        tmp_path / "s",
        ShapesSpec(
            num_train=8,
            num_val=0,
            image_size=96,
            max_objects=1,
            empty_fraction=0.0,
            classes=("square",),
        ),
    )
    for record in read_voc(root / "VOC", "train", ("square",)):
        ((x1, y1, x2, y2),) = record.boxes
        img = np.asarray(
            __import__("PIL.Image").Image.open(record.image_path).convert("RGB"), np.float32
        )
        inside = img[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2].reshape(-1, 3)
        assert inside.std(axis=0).max() < 20  # one flat colour (JPEG noise aside)


def test_a_folder_of_user_files_is_never_deleted_or_changed(tmp_path):
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "model.py").write_text("print('mine')\n")
    (root / "logs" / "old_run" / "checkpoints").mkdir(parents=True)
    (root / "logs" / "old_run" / "checkpoints" / "best.ckpt").write_bytes(b"\x00weights" * 100)
    before = snapshot(root)
    with pytest.raises(
        ForeignFolderError, match=r"data.source.root=.*project: it is not a generated"
    ):
        ensure_shapes(root, SPEC)
    assert snapshot(root) == before
    assert not (tmp_path / "project.tmp").exists()


def test_a_generated_dataset_with_a_user_file_added_is_not_regenerated(tmp_path):
    root = ensure_shapes(tmp_path / "s", SPEC)
    (root / "VOC" / "notes.txt").write_text("my notes\n")
    before = snapshot(root)
    with pytest.raises(
        ForeignFolderError, match=r"holds files a generated dataset does not \(VOC/notes.txt\)"
    ):
        ensure_shapes(root, ShapesSpec(**{**SPEC.__dict__, "seed": 3}))
    assert snapshot(root) == before


def test_a_foreign_temporary_sibling_is_left_alone_and_an_interrupted_one_replaced(tmp_path):
    tmp = tmp_path / "s.tmp"
    tmp.mkdir()
    (tmp / "thesis.tex").write_text("\\section{mine}\n")
    with pytest.raises(ForeignFolderError, match=r"temporary sibling"):
        ensure_shapes(tmp_path / "s", SPEC)
    assert (tmp / "thesis.tex").read_text() == "\\section{mine}\n"
    (tmp / "thesis.tex").unlink()
    (tmp / MARKER).write_text("{}")  # what an interrupted generation leaves
    (tmp / "VOC" / "JPEGImages").mkdir(parents=True)
    (tmp / "VOC" / "JPEGImages" / "000001.jpg").write_bytes(b"half")
    root = ensure_shapes(tmp_path / "s", SPEC)
    assert (root / "lightdet_shapes.json").is_file() and not tmp.exists()
    assert len(list((root / "VOC" / "JPEGImages").glob("*.jpg"))) == 16


def test_sizes_that_cannot_fit_are_refused_naming_the_keys(tmp_path):
    """image_size=64 with the default max_object_size=96 failed inside numpy's uniform."""
    with pytest.raises(
        ValueError,
        match=r"data\.source\.max_object_size=96\.0 exceeds "
        r"data\.source\.image_size=64.*image_size >= 96",
    ):
        ShapesSpec(image_size=64)
    with pytest.raises(
        ValueError,
        match=r"data\.source\.min_object_size=20\.0 exceeds "
        r"data\.source\.small_object_size=16\.0",
    ):
        ShapesSpec(min_object_size=20.0)
    spec = ShapesSpec(image_size=64, max_object_size=48.0, num_train=8, num_val=4)
    root = ensure_shapes(tmp_path / "small", spec)  # fits: generated
    records = read_voc(root / "VOC", "train", spec.classes)
    assert len(records) == 8
    assert all((r.boxes[:, 2:] <= 64).all() and (r.boxes[:, :2] >= 0).all() for r in records)
