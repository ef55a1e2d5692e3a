import numpy as np
import pytest

from lightdet.data.checks import DataChecker, DataPolicy
from lightdet.data.images import ImageProblem, load_rgb
from lightdet.data.records import AnnotationError
from lightdet.data.voc import read_voc
from lightdet.data.yolo import read_yolo, read_yolo_classes, write_yolo
from tests.conftest import CLASSES


def test_the_reader_round_trips_the_generated_data(tiny_shapes):
    assert read_yolo_classes(tiny_shapes / "YOLO") == list(CLASSES)
    for split in ("train", "val"):
        voc = {r.name: r for r in read_voc(tiny_shapes / "VOC", split, CLASSES)}
        yolo = read_yolo(tiny_shapes / "YOLO", split, CLASSES)
        assert sorted(r.name for r in yolo) == sorted(voc)
        for r in yolo:
            ref = voc[r.name]
            assert (r.width, r.height) == (ref.width, ref.height)
            np.testing.assert_allclose(r.boxes, ref.boxes, atol=0.01)  # VOC keeps 2 decimals
            assert r.labels.tolist() == ref.labels.tolist()


def test_write_then_read_gives_the_same_records(tmp_path, tiny_shapes):
    records = read_voc(tiny_shapes / "VOC", "val", CLASSES)
    write_yolo(tmp_path, "val", records, CLASSES)
    back = read_yolo(tmp_path, "val", CLASSES)
    assert [r.labels.tolist() for r in back] == [r.labels.tolist() for r in records]
    for a, b in zip(back, records):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def _one(tmp_path, tiny_shapes, lines: str):
    records = read_voc(tiny_shapes / "VOC", "val", CLASSES)[:1]
    write_yolo(tmp_path, "val", records, CLASSES)
    (label,) = (tmp_path / "labels/val").glob("*.txt")
    label.write_text(lines)
    return label


@pytest.mark.parametrize(
    "lines,message",
    [
        ("1 0.5 0.5 0.2\n", r"\.txt: line 1: expected 'class cx cy w h', got '1 0.5 0.5 0.2'"),
        ("0 0.5 0.5 0.2 0.2\nx 0.5 0.5 0.2 0.2\n", r"\.txt: line 2: expected 'class cx cy w h'"),
        ("7 0.5 0.5 0.2 0.2\n", r"\.txt: line 1.class: 7 is not a class index \(0..2\)"),
    ],
)
def test_malformed_labels_name_the_file_and_line(tmp_path, tiny_shapes, lines, message):
    _one(tmp_path, tiny_shapes, lines)
    with pytest.raises(AnnotationError, match=message):
        read_yolo(tmp_path, "val", CLASSES)


def test_unknown_class_indices_can_be_skipped_and_counted(tmp_path, tiny_shapes):
    _one(tmp_path, tiny_shapes, "7 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
    checker = DataChecker(DataPolicy(unknown_classes="skip"))
    (record,) = read_yolo(tmp_path, "val", CLASSES, checker=checker)
    assert record.labels.tolist() == [2] and checker.skipped["unknown_class"] == 1


def test_an_image_without_a_label_file_has_no_objects(tmp_path, tiny_shapes):
    _one(tmp_path, tiny_shapes, "").unlink()
    (record,) = read_yolo(tmp_path, "val", CLASSES)
    assert record.boxes.shape == (0, 4)


def test_an_unreadable_image_is_skipped_and_counted(tmp_path, tiny_shapes):
    _one(tmp_path, tiny_shapes, "0 0.5 0.5 0.2 0.2\n")
    (image,) = (tmp_path / "images/val").iterdir()
    image.unlink()
    image.write_bytes(b"")
    checker = DataChecker(DataPolicy())
    assert read_yolo(tmp_path, "val", CLASSES, checker=checker) == []
    assert checker.skipped["image_unreadable"] == 1
    with pytest.raises(AnnotationError, match="not a readable image"):
        read_yolo(tmp_path, "val", CLASSES)


def test_label_files_with_a_bom_or_in_utf16_read_as_plain_utf8(tmp_path, tiny_shapes):
    """Windows editors write a UTF-8 byte-order mark, or UTF-16: the same label either way."""
    label = _one(tmp_path, tiny_shapes, "0 0.5 0.5 0.2 0.2\n")
    (plain,) = read_yolo(tmp_path, "val", CLASSES)
    for encoded in ("\ufeff0 0.5 0.5 0.2 0.2\n".encode(), "0 0.5 0.5 0.2 0.2\n".encode("utf-16")):
        label.write_bytes(encoded)
        (record,) = read_yolo(tmp_path, "val", CLASSES)
        assert record.labels.tolist() == plain.labels.tolist() == [1]
        np.testing.assert_array_equal(record.boxes, plain.boxes)
    (tmp_path / "classes.txt").write_bytes("\ufeffcircle\nsquare\ntriangle\n".encode())
    assert read_yolo_classes(tmp_path) == list(CLASSES)  # no BOM glued to the first name
    label.write_bytes(b"0 0.5 0.5 0.2 0.2 \xff\xfe\xfa\n")  # neither UTF-8 nor UTF-16
    with pytest.raises(AnnotationError, match=r"\.txt: not UTF-8 or UTF-16 text \(byte 18"):
        read_yolo(tmp_path, "val", CLASSES)


@pytest.mark.timeout(30)
def test_a_fifo_named_like_an_image_is_skipped_not_read(tmp_path, tiny_shapes):
    """Opening a FIFO for reading blocks until a writer comes: indexing must never open one."""
    import os

    _one(tmp_path, tiny_shapes, "0 0.5 0.5 0.2 0.2\n")
    os.mkfifo(tmp_path / "images" / "val" / "zz_pipe.jpg")
    checker = DataChecker(DataPolicy(), "val")
    records = read_yolo(tmp_path, "val", CLASSES, checker=checker)
    assert [r.name for r in records] != [] and "zz_pipe" not in [r.name for r in records]
    assert checker.skipped["image_unreadable"] == 1
    with pytest.raises(ImageProblem, match=r"zz_pipe\.jpg: not a regular file \(a FIFO\)"):
        load_rgb(tmp_path / "images" / "val" / "zz_pipe.jpg")


def test_a_segmentation_polygon_becomes_its_bounding_box(tmp_path, tiny_shapes):
    _one(tmp_path, tiny_shapes, "2 0.1 0.2 0.5 0.25 0.3 0.6 0.15 0.4\n")  # Ultralytics segment
    (record,) = read_yolo(tmp_path, "val", CLASSES)
    w, h = record.width, record.height
    np.testing.assert_allclose(record.boxes, [[0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h]], rtol=1e-6)
    assert record.labels.tolist() == [3]
    _one(tmp_path, tiny_shapes, "2 0.1 0.2 0.5 0.25 0.3\n")  # five numbers: neither
    with pytest.raises(
        AnnotationError,
        match=r"line 1: expected 'class cx cy w h', got .*: 5 "
        r"numbers after the class",
    ):
        read_yolo(tmp_path, "val", CLASSES)


def test_two_images_with_one_stem_are_an_error_naming_both(tmp_path, tiny_shapes):
    _one(tmp_path, tiny_shapes, "0 0.5 0.5 0.2 0.2\n")
    (image,) = (tmp_path / "images" / "val").iterdir()
    image.with_suffix(".png").write_bytes(image.read_bytes())
    with pytest.raises(
        AnnotationError,
        match=rf"{image.stem}\.jpg and {image.stem}\.png share "
        rf"the stem '{image.stem}', so both would take "
        rf"labels/val/{image.stem}\.txt",
    ):
        read_yolo(tmp_path, "val", CLASSES)


def test_pixel_coordinates_get_a_hint(tmp_path, tiny_shapes, caplog):
    _one(tmp_path, tiny_shapes, "0 40 30 20 10\n1 60 70 8 8\n")  # pixels, not 0..1
    checker = DataChecker(DataPolicy(), "val")
    with caplog.at_level("WARNING", logger="lightdet.data.yolo"):
        read_yolo(tmp_path, "val", CLASSES, checker=checker)
    assert (
        "every coordinate is above 1 (25 to 74): this looks like pixel coordinates" in caplog.text
    )
    caplog.clear()
    _one(tmp_path, tiny_shapes, "0 0.5 0.5 0.2 0.2\n")
    with caplog.at_level("WARNING", logger="lightdet.data.yolo"):
        read_yolo(tmp_path, "val", CLASSES, checker=checker)
    assert "pixel coordinates" not in caplog.text


def test_a_yolo_folder_without_split_folders_gets_a_seeded_split(tmp_path):
    from PIL import Image

    from lightdet.data.sources import YOLOSource

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    for i in range(10):
        Image.new("RGB", (32, 32)).save(tmp_path / "images" / f"img{i}.jpg")
        (tmp_path / "labels" / f"img{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    source = YOLOSource(tmp_path)  # train=train, val=val: no such folders
    train, val = source.records("train"), source.records("val")
    assert (len(train), len(val)) == (8, 2) and source.records("test") is None
    assert sorted(r.name for r in train + val) == sorted(f"img{i}" for i in range(10))
    assert all(r.boxes.tolist() == [[12.0, 12.0, 20.0, 20.0]] for r in train + val)
    assert [r.labels.tolist() for r in val] == [[int(r.name[-1]) % 2 + 1] for r in val]
    made = source.made_splits()[str(tmp_path)]
    assert made == {"train": sorted(r.name for r in train), "val": sorted(r.name for r in val)}
    assert YOLOSource(tmp_path).made_splits() == source.made_splits()  # seeded: the same again
    (tmp_path / "images" / "train").mkdir()  # a split folder: the layout with split folders
    assert YOLOSource(tmp_path).made_splits() == {}


def test_a_label_file_without_its_image_is_counted(tmp_path, tiny_shapes):
    label = _one(tmp_path, tiny_shapes, "0 0.5 0.5 0.2 0.2\n")
    (label.parent / "renamed_away.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    checker = DataChecker()
    (record,) = read_yolo(tmp_path, "val", CLASSES, checker=checker)
    assert record.name == label.stem and checker.noted["label_without_image"] == 1
    assert "renamed_away.txt" in checker.examples["label_without_image"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("circle\n\nsquare\ntriangle\n", r"classes.txt: line 2 is blank: the names after it"),
        ("\ncircle\nsquare\n", r"classes.txt: line 1 is blank"),
    ],
)
def test_a_blank_line_among_the_class_names_is_refused(tmp_path, text, message):
    (tmp_path / "classes.txt").write_text(text)
    with pytest.raises(AnnotationError, match=message):
        read_yolo_classes(tmp_path)


def test_trailing_blank_lines_and_an_agreeing_data_yaml_are_fine(tmp_path):
    (tmp_path / "classes.txt").write_text("circle\nsquare\n\n\n")
    (tmp_path / "data.yaml").write_text("path: .\nnames:\n  0: circle\n  1: square\n")
    assert read_yolo_classes(tmp_path) == ["circle", "square"]


def test_a_data_yaml_whose_names_disagree_with_classes_txt_is_refused(tmp_path):
    (tmp_path / "classes.txt").write_text("circle\nsquare\n")
    (tmp_path / "data.yaml").write_text("names: [square, circle]\n")
    with pytest.raises(AnnotationError, match=r"data.yaml: names \['square', 'circle'\] differ"):
        read_yolo_classes(tmp_path)


def test_a_flat_folder_does_not_count_a_stray_label_file_in_every_split(tmp_path):
    """Without split folders every split reads the one labels/ folder: a stray label file there
    was counted by each split (twice for train and val); only a split's own folder counts."""
    from PIL import Image

    from lightdet.data.sources import YOLOSource

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    for i in range(10):
        Image.new("RGB", (32, 32)).save(tmp_path / "images" / f"img{i}.jpg")
        (tmp_path / "labels" / f"img{i}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (tmp_path / "labels" / "stray.txt").write_text("1 0.5 0.5 0.25 0.25\n")
    source = YOLOSource(tmp_path)
    checkers = {split: DataChecker() for split in ("train", "val")}
    assert sum(len(source.records(s, checkers[s])) for s in checkers) == 10
    assert [c.noted["label_without_image"] for c in checkers.values()] == [0, 0]
