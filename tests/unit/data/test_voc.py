import numpy as np
import pytest

from lightdet.data.records import AnnotationError, DetectionRecord
from lightdet.data.voc import read_voc, write_voc_annotation

CLASSES = ("circle", "square", "triangle")


def _voc(tmp_path, xml: str, name="0001"):
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    (tmp_path / "Annotations" / f"{name}.xml").write_text(xml)
    (tmp_path / "ImageSets/Main/train.txt").write_text(f"{name}\n")
    return tmp_path


def _xml(objects: str) -> str:
    return f"<annotation><filename>0001.jpg</filename><size><width>100</width><height>80</height></size>{objects}</annotation>"


def test_round_trip_of_a_written_record(tmp_path):
    record = DetectionRecord(
        tmp_path / "JPEGImages/0001.jpg",
        1,
        100,
        80,
        np.array([[0.0, 5.5, 40.25, 60.0], [10, 10, 20, 30]]),
        np.array([3, 1]),
        np.array([False, True]),
        name="0001",
    )
    _voc(tmp_path, "")
    write_voc_annotation(tmp_path / "Annotations/0001.xml", record, CLASSES)
    (back,) = read_voc(tmp_path, "train", CLASSES)
    np.testing.assert_allclose(back.boxes, record.boxes, atol=0.01)
    assert back.labels.tolist() == [3, 1] and back.iscrowd.tolist() == [False, True]
    assert (back.width, back.height, back.name) == (100, 80, "0001")
    assert back.image_path == tmp_path / "JPEGImages/0001.jpg"


def test_one_based_pixels_float_coordinates_and_missing_difficult(tmp_path):
    obj = "<object><name>square</name><bndbox><xmin>1</xmin><ymin>10.5</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>"
    (rec,) = read_voc(_voc(tmp_path, _xml(obj)), "train", CLASSES)
    assert rec.boxes.tolist() == [[0.0, 9.5, 50.0, 60.0]]
    assert rec.labels.tolist() == [2] and rec.iscrowd.tolist() == [False]


def test_image_without_objects_is_kept(tmp_path):
    (rec,) = read_voc(_voc(tmp_path, _xml("")), "train", CLASSES)
    assert rec.boxes.shape == (0, 4) and rec.labels.dtype == np.int64


@pytest.mark.parametrize(
    "xml,message",
    [
        ("<annotation><size>", r"0001.xml: malformed XML"),
        (
            _xml("<object><name>dog</name></object>"),
            r"0001.xml: object\[0\].name: unknown class 'dog'",
        ),
        (
            _xml(
                "<object><name>square</name><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object>"
            ),
            r"0001.xml: object\[0\].bndbox.xmin: not a number",
        ),
        (
            _xml(
                "<object><name>square</name><bndbox><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object>"
            ),
            r"0001.xml: object\[0\].bndbox.xmin: missing",
        ),
        (
            "<annotation><size><width>3</width></size></annotation>",
            r"0001.xml: size.height: missing",
        ),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, xml, message):
    with pytest.raises(AnnotationError, match=message):
        read_voc(_voc(tmp_path, xml), "train", CLASSES)


def test_missing_split_list_says_which_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.txt"):
        read_voc(tmp_path, "train", CLASSES)


def _object(difficult: str = "", boxes: int = 1) -> str:
    box = "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox>"
    tag = f"<difficult>{difficult}</difficult>" if difficult is not None else ""
    return f"<object><name>square</name>{tag}{box * boxes}</object>"


@pytest.mark.parametrize(
    ("written", "difficult"),
    [("1", True), ("yes", True), ("True", True), ("0", False), ("no", False), ("", False)],
)
def test_difficult_is_read_as_the_tools_write_it(tmp_path, written, difficult):
    (rec,) = read_voc(_voc(tmp_path, _xml(_object(written))), "train", CLASSES)
    assert rec.iscrowd.tolist() == [difficult]


def test_an_unreadable_difficult_value_or_a_second_box_in_one_object_is_named(tmp_path):
    with pytest.raises(AnnotationError, match=r"0001.xml: object\[0\].difficult: expected 0 or 1"):
        read_voc(_voc(tmp_path, _xml(_object("maybe"))), "train", CLASSES)
    with pytest.raises(AnnotationError, match=r"0001.xml: object\[0\].bndbox: 2 bndbox elements"):
        read_voc(_voc(tmp_path, _xml(_object("0", boxes=2))), "train", CLASSES)


def test_an_annotation_is_paired_with_its_own_image_whatever_its_filename_says(tmp_path):
    """The devkit pairs 0002.xml with 0002.jpg: a <filename> naming 0001.jpg (copied from
    another file) must not give 0001.jpg a second set of boxes; the mismatch is counted."""
    from lightdet.data.checks import DataChecker

    root = _voc(tmp_path, _xml(_object("0")), name="0002")  # its filename says 0001.jpg
    (root / "JPEGImages" / "0002.png").write_bytes(b"")
    (root / "JPEGImages" / "0001.jpg").write_bytes(b"")
    checker = DataChecker()
    (rec,) = read_voc(root, "train", CLASSES, checker=checker)
    assert rec.image_path == root / "JPEGImages" / "0002.png"
    assert checker.noted["filename_differs"] == 1
    assert (
        "'0001.jpg' is not this annotation's image (0002.*)" in checker.examples["filename_differs"]
    )
    (root / "JPEGImages" / "0002.png").unlink()  # no image of its own name: the named one
    (rec,) = read_voc(root, "train", CLASSES)
    assert rec.image_path == root / "JPEGImages" / "0001.jpg"
