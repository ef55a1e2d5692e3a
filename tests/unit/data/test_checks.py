"""Every row of docs/bad_inputs.md on real files: the messy VOC and COCO folders."""

from collections import Counter

import numpy as np
import pytest
import torch

from lightdet.data.checks import DataChecker, DataPolicy, check_records
from lightdet.data.dataset import DetectionDataset
from lightdet.data.images import load_rgb
from lightdet.data.records import AnnotationError, DetectionRecord
from lightdet.data.sources import COCOSource, VOCSource
from lightdet.data.transforms import eval_preset
from lightdet.lightning.datamodule import DetectionDataModule
from tests.messy import (
    CLASSES,
    COCO_ERRORS,
    EXPECTED_FIXED,
    EXPECTED_NOTED,
    EXPECTED_SKIPPED,
    HUGE_LIMIT,
    NUM_CLEAN,
    VOC_ERRORS,
    write_messy_coco,
    write_messy_voc,
)

POLICY = {"max_image_pixels": HUGE_LIMIT}


def _voc(root, **policy) -> DetectionDataModule:
    source = VOCSource(root, class_names=CLASSES, train="train", val="val")
    return DetectionDataModule(source, num_workers=0, policy={**POLICY, **policy})


def _coco(root, **policy) -> DetectionDataModule:
    return DetectionDataModule(
        COCOSource(root, train="train", val="val"), num_workers=0, policy={**POLICY, **policy}
    )


@pytest.fixture(scope="module")
def messy_voc(tmp_path_factory):
    return write_messy_voc(tmp_path_factory.mktemp("messy") / "VOC")


@pytest.fixture(scope="module")
def messy_coco(tmp_path_factory):
    return write_messy_coco(tmp_path_factory.mktemp("messy") / "COCO")


@pytest.mark.parametrize("make", [_voc, _coco], ids=["voc", "coco"])
def test_the_messy_folders_index_with_every_skip_and_fix_counted(make, messy_voc, messy_coco):
    dm = make(messy_voc if make is _voc else messy_coco)
    dm.setup("fit")
    check = dm.checks["train"]
    assert dict(check.skipped) == EXPECTED_SKIPPED
    assert dict(check.fixed) == EXPECTED_FIXED
    assert dict(check.noted) == EXPECTED_NOTED
    skipped_images = 5  # missing, truncated, zero-byte, garbage, huge
    assert len(dm.datasets["train"]) == NUM_CLEAN + 19 - skipped_images
    rows = dm.check_rows()
    assert ["train", "skipped", "image_truncated", 1] in rows
    assert ["train", "fixed", "box_clipped", 1] in rows
    assert not dm.checks["val"].skipped


def _by_name(dm, split="train") -> dict[str, DetectionRecord]:
    return {r.image_path.stem: r for r in dm.datasets[split].records}


@pytest.mark.parametrize("make", [_voc, _coco], ids=["voc", "coco"])
def test_each_kept_row_has_the_documented_outcome(make, messy_voc, messy_coco):
    dm = make(messy_voc if make is _voc else messy_coco)
    dm.setup("fit")
    r = _by_name(dm)
    np.testing.assert_allclose(r["float_coords"].boxes, [[9.5, 10.25, 40.5, 50.75]])
    assert len(r["degenerate"].boxes) == 1 and r["degenerate"].labels.tolist() == [2]
    np.testing.assert_allclose(r["partly_outside"].boxes, [[0, 20, 50, 64]])  # clipped
    assert r["mostly_outside"].boxes.shape == (0, 4)  # its box skipped, the image kept
    assert r["outside"].labels.tolist() == [2]  # the box outside the image is gone
    assert r["no_objects"].boxes.shape == (0, 4)  # kept as a negative
    assert r["difficult"].iscrowd.tolist() == [False, True]  # ignored by evaluation
    assert r["missing_tags"].iscrowd.tolist() == [False]  # a missing tag means 0
    for gone in ("missing_image", "truncated", "zero_byte", "garbage", "huge"):
        assert gone not in r
    # COCO's non-contiguous category ids 3, 7, 12 map to labels 1..3
    if make is _coco:
        assert dm.category_map == {3: 1, 7: 2, 12: 3}


def test_image_modes_are_converted_to_8_bit_rgb(messy_voc):
    folder = messy_voc / "JPEGImages"
    reference = load_rgb(folder / "grayscale.jpg")
    for name in ("grayscale.jpg", "cmyk.jpg", "rgba.png", "palette.png", "png16.png"):
        pixels = load_rgb(folder / name)
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8, name
    # 16-bit: the rectangle (value 230 * 257) scales to ~ 230, not saturated to 255
    png16 = load_rgb(folder / "png16.png")
    assert 150 < png16[20, 20, 0] < 250 and png16[2, 2, 0] < 100
    assert abs(int(png16[20, 20, 0]) - int(reference[20, 20, 0])) <= 3
    assert (load_rgb(folder / "grayscale.jpg")[..., 0] == reference[..., 1]).all()


def test_exif_orientation_is_applied(messy_voc):
    pixels = load_rgb(messy_voc / "JPEGImages/exif_rotated.jpg")
    assert pixels.shape == (64, 48, 3)  # stored 64 wide x 48 high, orientation 6


def test_training_samples_follow_the_data_contract_on_messy_data(messy_voc):
    dm = _voc(messy_voc)
    dm.setup("fit")
    ds = dm.datasets["train"]
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
        assert target["labels"].dtype == torch.int64 and (target["labels"] >= 1).all()
        boxes, (h, w) = target["boxes"], image.shape[1:]
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()


@pytest.mark.parametrize("row", sorted(VOC_ERRORS))
def test_each_voc_error_row_names_the_file_and_the_field(tmp_path, row):
    root = write_messy_voc(tmp_path / "VOC", error=row)
    with pytest.raises(AnnotationError, match=VOC_ERRORS[row]):
        _voc(root).setup("fit")


@pytest.mark.parametrize("row", sorted(COCO_ERRORS))
def test_each_coco_error_row_names_the_file_and_the_field(tmp_path, row):
    root = write_messy_coco(tmp_path / "COCO", error=row)
    with pytest.raises(AnnotationError, match=COCO_ERRORS[row]):
        _coco(root).setup("fit")


@pytest.mark.parametrize(
    "make,write", [(_voc, write_messy_voc), (_coco, write_messy_coco)], ids=["voc", "coco"]
)
def test_options_turn_unknown_classes_and_size_mismatch_into_counted_skips_and_fixes(
    tmp_path, make, write
):
    unknown = "unknown_class" if write is write_messy_voc else "unknown_category"
    dm = make(write(tmp_path / "a", error=unknown), unknown_classes="skip")
    dm.setup("fit")
    assert dm.checks["train"].skipped["unknown_class"] == 1
    dm = make(write(tmp_path / "b", error="size_mismatch"), size_mismatch="fix")
    dm.setup("fit")
    assert dm.checks["train"].fixed["size_mismatch"] == 1
    assert (_by_name(dm)["size_mismatch"].width, _by_name(dm)["size_mismatch"].height) == (64, 64)


@pytest.mark.parametrize("make", [_voc, _coco], ids=["voc", "coco"])
def test_strict_mode_fails_on_the_first_bad_item_naming_file_and_field(make, messy_voc, messy_coco):
    root = messy_voc if make is _voc else messy_coco
    field = r"object\[1\].bndbox" if make is _voc else r"annotations\[\d+\].bbox"
    with pytest.raises(AnnotationError, match=rf"degenerate.*{field}: xmax \(10\) <= xmin \(50\)"):
        make(root, strict=True).setup("fit")


def test_too_many_skips_is_an_error_naming_the_reasons(messy_voc):
    with pytest.raises(
        AnnotationError,
        match=r"train split: 5 of 64 images skipped .* > "
        r"data.policy.max_skip_fraction \(0.05\); reasons .*image_unreadable: 2",
    ):
        _voc(messy_voc, max_skip_fraction=0.05).setup("fit")


def test_difficult_boxes_can_be_left_out_of_training_but_not_of_evaluation(messy_voc):
    dm = _voc(messy_voc, train_difficult=False)
    dm.setup("fit")
    assert _by_name(dm)["difficult"].labels.tolist() == [2]


def test_images_without_objects_can_be_skipped(messy_voc):
    dm = _voc(messy_voc, keep_empty=False, max_skip_fraction=0.2)
    dm.setup("fit")
    assert dm.checks["train"].skipped["image_without_objects"] == 2


def test_label_zero_never_reaches_a_model(tmp_path):
    write_messy_voc(tmp_path / "VOC")
    record = DetectionRecord(
        tmp_path / "VOC/JPEGImages/clean_00.jpg",
        1,
        64,
        64,
        np.array([[1.0, 1, 9, 9]]),
        np.array([0]),
        source="a.xml",
        box_refs=["object[0].bndbox"],
    )
    with pytest.raises(AnnotationError, match=r"a.xml: object\[0\].bndbox: label 0 < 1"):
        check_records([record], DataChecker(DataPolicy()))
    with pytest.raises(ValueError, match="label 0 reached the model"):
        DetectionDataset([record], eval_preset())[0]


def test_header_only_mode_checks_sizes_without_decoding(messy_voc):
    dm = _voc(messy_voc, decode_images=False)
    dm.setup("fit")
    skipped = Counter(dm.checks["train"].skipped)
    assert skipped["image_truncated"] == 0  # not found without decoding: documented trade-off
    assert skipped["image_unreadable"] == 2 and skipped["image_too_large"] == 1


def test_an_empty_split_is_an_error(tmp_path):
    root = write_messy_voc(tmp_path / "VOC")
    (root / "ImageSets/Main/val.txt").write_text("")
    with pytest.raises(AnnotationError, match="the 'val' split has no images"):
        _voc(root).setup("fit")


def test_a_voc_box_without_extent_in_the_file_is_degenerate(tmp_path):
    """A real dataset's ``[504, 337, 504, 337]``: the check holds on the file's own corners,
    not on the 1 px box the 1-based shift would make of it (skipped and counted, or an error
    in strict mode)."""
    root = write_messy_voc(tmp_path / "VOC")
    clean = [f"clean_{i:02d}" for i in range(NUM_CLEAN)]
    (root / "ImageSets/Main/train.txt").write_text("\n".join(clean) + "\n")
    xml = root / "Annotations" / "clean_20.xml"
    point = (
        "<object><name>circle</name><bndbox><xmin>20</xmin><ymin>30</ymin><xmax>20</xmax>"
        "<ymax>30</ymax></bndbox></object></annotation>"
    )
    xml.write_text(xml.read_text().replace("</annotation>", point))
    dm = _voc(root)
    dm.setup("fit")
    assert dict(dm.checks["train"].skipped) == {"degenerate_box": 1}
    assert len(_by_name(dm)["clean_20"].boxes) == 1  # the image keeps its real box
    with pytest.raises(AnnotationError, match=r"clean_20\.xml: object\[1\]\.bndbox: xmax"):
        _voc(root, strict=True).setup("fit")


def test_images_that_are_symlinks_into_another_folder_are_read(tmp_path):
    """Per-file links, as dataset tools write them, are the user's to make; only a name in an
    annotation that leaves the root (``..``, absolute) is refused (the catalogue rows)."""
    root = write_messy_voc(tmp_path / "VOC")
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    for name in ("clean_20", "clean_21"):
        image = root / "JPEGImages" / f"{name}.jpg"
        image.rename(elsewhere / image.name)
        image.symlink_to(elsewhere / image.name)
    dm = _voc(root)
    dm.setup("fit")
    assert dict(dm.checks["train"].skipped) == EXPECTED_SKIPPED  # nothing more skipped
    record = _by_name(dm)["clean_21"]
    assert record.image_path == root / "JPEGImages" / "clean_21.jpg"
    assert record.image_path.is_symlink() and len(record.boxes) == 1
    assert load_rgb(record.image_path).shape == (64, 64, 3)


def test_a_box_whose_area_is_zero_in_float32_is_degenerate(tmp_path):
    """A COCO box 1e-30 px wide passes every comparison (xmax > xmin) and its area, the
    product the models and metrics compute in float32, is 0: skipped and counted like any
    degenerate box, named in strict mode."""
    import json

    def degenerate(root, **policy):
        dm = _coco(root, **policy)
        dm.setup("fit")
        return dm.checks["train"].skipped["degenerate_box"]

    root = write_messy_coco(tmp_path / "COCO")
    before = degenerate(root)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    first = data["images"][0]["id"]  # the first image read: strict stops there
    index, ann = next((i, a) for i, a in enumerate(data["annotations"]) if a["image_id"] == first)
    ann["bbox"] = [0, 0, 1e-30, 1e-30]  # at the origin: xmax > xmin holds in float32 too
    path.write_text(json.dumps(data))
    assert degenerate(root) == before + 1
    with pytest.raises(AnnotationError, match=rf"annotations\[{index}\].*area is 0 in float32"):
        _coco(root, strict=True).setup("fit")


def test_a_nul_byte_in_a_coco_file_name_is_an_error_naming_the_field(tmp_path):
    import json

    root = write_messy_coco(tmp_path / "COCO")
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["images"][3]["file_name"] = "clean\x00_01.jpg"
    path.write_text(json.dumps(data))
    with pytest.raises(
        AnnotationError, match=r"images\[3\].file_name: 'clean\\x00_01.jpg' holds a NUL byte"
    ):
        _coco(root).setup("fit")


def test_a_png_whose_text_chunk_is_over_pils_limit_is_skipped_as_unreadable(tmp_path):
    """PIL refuses a compressed text chunk that inflates past MAX_TEXT_CHUNK (its guard
    against decompression bombs) with a ValueError, which aborted indexing: now the image is
    skipped and counted like any unreadable one."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (PngImagePlugin.MAX_TEXT_CHUNK + 10), zip=True)
    bomb = tmp_path / "metadata.png"
    Image.new("RGB", (64, 48), "red").save(bomb, pnginfo=info)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 48), "red").save(plain)
    records = [
        DetectionRecord(
            image_path=p,
            image_id=i,
            width=64,
            height=48,
            boxes=np.asarray([[4, 4, 30, 30]], np.float32),
            labels=np.asarray([1]),
            iscrowd=np.asarray([False]),
        )
        for i, p in enumerate((plain, bomb))
    ]
    checker = DataChecker(DataPolicy(max_skip_fraction=1.0))
    kept = check_records(records, checker)
    assert [r.image_path for r in kept] == [plain]
    assert dict(checker.skipped) == {"image_unreadable": 1}
    assert "Decompressed data too large" in checker.examples["image_unreadable"]
