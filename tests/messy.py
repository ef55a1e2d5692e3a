"""A "messy VOC" and a "messy COCO" folder with every row of ``docs/bad_inputs.md``.

The default folder holds every row whose outcome is skip, fix, convert or keep (training on it
must complete); each error row is a variant (``error=<row>``) that adds one bad item, so a test
can check that exactly that item is refused with a message naming file and field.

Images are 64x64 with a filled rectangle per box. The "huge" row is 400x400, refused under the
pixel limit the tests set (``HUGE_LIMIT``), as real huge images are under the default one.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
COCO_IDS = (3, 7, 12)  # non-contiguous on purpose
SIZE = 64
HUGE_LIMIT = 100_000  # data.policy.max_image_pixels in the tests: 400x400 exceeds it
NUM_CLEAN = 45


@dataclass
class Item:
    name: str
    boxes: list = field(default_factory=lambda: [[8.0, 8.0, 40.0, 40.0]])  # xyxy, 0-based
    classes: list = field(default_factory=lambda: ["square"])
    difficult: list | None = None  # None: no <difficult> tag at all (VOC)
    image: str = "rgb"  # how the image file is written (see _write_image)
    annotated_size: tuple | None = None  # (w, h) written in the annotation; None: the real one


def default_items() -> list[Item]:
    """Every skip/fix/convert/keep row, plus clean images so skips stay under 10 %."""
    rows = [
        Item("float_coords", boxes=[[9.5, 10.25, 40.5, 50.75]]),
        Item("degenerate", boxes=[[8, 8, 30, 30], [50, 10, 10, 40]], classes=["square", "circle"]),
        Item("partly_outside", boxes=[[-6, 20, 50, 70]]),  # clipped to [0, 20, 50, 64]
        Item("mostly_outside", boxes=[[56, 8, 136, 40]]),  # 10 % inside
        Item("outside", boxes=[[8, 8, 30, 30], [70, 70, 90, 90]], classes=["square", "circle"]),
        Item("no_objects", boxes=[], classes=[]),
        Item(
            "difficult",
            boxes=[[8, 8, 30, 30], [34, 34, 60, 60]],
            classes=["square", "triangle"],
            difficult=[0, 1],
        ),
        Item("missing_tags"),  # no <difficult>/<truncated>
        Item("missing_image", image="missing"),
        Item("truncated", image="truncated"),
        Item("zero_byte", image="zero"),
        Item("garbage", image="garbage"),
        Item("grayscale", image="L"),
        Item("cmyk", image="CMYK"),
        Item("rgba", image="RGBA"),
        Item("palette", image="P"),
        Item("png16", image="I;16"),
        Item("exif_rotated", image="exif", annotated_size=(48, 64)),  # upright size
        Item("huge", image="huge", annotated_size=(400, 400)),
    ]
    clean = [
        Item(f"clean_{i:02d}", boxes=[[4 + i % 10, 6, 30 + i % 20, 40]], classes=[CLASSES[i % 3]])
        for i in range(NUM_CLEAN)
    ]
    return rows + clean


# What the default messy folder must report for its train split (skipped and fixed per reason).
EXPECTED_SKIPPED = {
    "degenerate_box": 1,
    "box_mostly_outside": 1,
    "box_outside_image": 1,
    "image_missing": 1,
    "image_truncated": 1,
    "image_unreadable": 2,  # zero_byte, garbage
    "image_too_large": 1,
}
EXPECTED_FIXED = {"box_clipped": 1}
EXPECTED_NOTED = {"image_without_objects": 2, "difficult_box": 1}  # mostly_outside loses its box


def _write_image(path: Path, item: Item) -> None:
    kind = item.image
    if kind == "missing":
        return
    if kind == "zero":
        path.write_bytes(b"")
        return
    if kind == "garbage":
        path.write_bytes(b"this is not an image\x00\x01" * 20)
        return
    size = (400, 400) if kind == "huge" else (SIZE, SIZE)
    rng = np.random.default_rng(zlib.crc32(item.name.encode()))
    pixels = rng.integers(0, 80, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for box in item.boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 > x1 and y2 > y1:
            draw.rectangle([x1, y1, x2, y2], fill=(230, 200, 40))
    if kind == "truncated":
        image.save(path, "JPEG", quality=95)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "exif":  # stored 64 wide x 48 high; orientation 6 turns it upright (48 x 64)
        raw = image.crop((0, 0, SIZE, 48))
        exif = raw.getexif()
        exif[0x0112] = 6
        raw.save(path, "JPEG", exif=exif)
    elif kind == "I;16":
        gray = np.asarray(image.convert("L")).astype(np.uint16) * 257  # 16-bit, full range
        Image.fromarray(gray).save(path, "PNG")
    elif kind == "P":
        image.convert("P").save(path, "PNG", transparency=0)
    elif kind in ("L", "CMYK"):
        image.convert(kind).save(path, "JPEG")
    elif kind == "RGBA":
        image.convert("RGBA").save(path, "PNG")
    else:
        image.save(path, "JPEG", quality=95)


def _extension(item: Item) -> str:
    return ".png" if item.image in ("RGBA", "P", "I;16") else ".jpg"


def _size(item: Item) -> tuple:
    if item.annotated_size:
        return item.annotated_size
    return (400, 400) if item.image == "huge" else (SIZE, SIZE)


# --- VOC -----------------------------------------------------------------------------------


def _voc_xml(item: Item, filename: str) -> str:
    width, height = _size(item)
    objects = []
    for i, (box, cls) in enumerate(zip(item.boxes, item.classes)):
        x1, y1, x2, y2 = (_voc_number(v) for v in (box[0] + 1, box[1] + 1, box[2], box[3]))
        tags = ""
        if item.difficult is not None:
            tags = f"<truncated>0</truncated><difficult>{item.difficult[i]}</difficult>"
        objects.append(
            f"<object><name>{cls}</name>{tags}<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
    )


def _voc_number(v) -> str:
    return str(v) if isinstance(v, str) else f"{float(v):g}"


VOC_ERRORS = {
    # row -> (extra item or raw xml, expected message regex)
    "nan_coordinate": r"nan_coordinate.xml: object\[0\].bndbox: non-finite coordinate",
    "unknown_class": r"unknown_class.xml: object\[0\].name: unknown class 'dog'",
    "size_mismatch": r"size_mismatch.xml: size: annotated 100x80, but the image .* is 64x64",
    "empty_xml": r"empty_xml.xml: malformed XML \(no element found: line 1, column 0\)",
    "malformed_xml": r"malformed_xml.xml: malformed XML \(.*line 2, column",
    "path_escape": r"path_escape.xml: filename: '../../outside.jpg' resolves outside",
    "absolute_path": r"absolute_path.xml: filename: '/etc/hostname' resolves outside",
    "duplicate_listing": r"train.txt: line \d+: image 'clean_00' listed twice",
}


def write_messy_voc(root: Path, error: str | None = None) -> Path:
    """A VOC year folder (``Annotations``, ``JPEGImages``, ``ImageSets/Main/{train,val}.txt``)."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    items = default_items()
    names = []
    for item in items:
        filename = item.name + _extension(item)
        _write_image(root / "JPEGImages" / filename, item)
        (root / "Annotations" / f"{item.name}.xml").write_text(_voc_xml(item, filename))
        names.append(item.name)
    if error is not None:
        names.append(_voc_error(root, error))
    (root / "ImageSets/Main/train.txt").write_text("\n".join(names) + "\n")
    (root / "ImageSets/Main/val.txt").write_text("\n".join(f"clean_{i:02d}" for i in range(8)))
    return root


def _voc_error(root: Path, row: str) -> str:
    ann = root / "Annotations" / f"{row}.xml"
    good = Item(row)
    _write_image(root / "JPEGImages" / f"{row}.jpg", good)
    xml = _voc_xml(good, f"{row}.jpg")
    if row == "nan_coordinate":
        xml = xml.replace("<xmin>9</xmin>", "<xmin>nan</xmin>")
    elif row == "unknown_class":
        xml = xml.replace("<name>square</name>", "<name>dog</name>")
    elif row == "size_mismatch":
        xml = xml.replace(
            "<width>64</width><height>64</height>", "<width>100</width><height>80</height>"
        )
    elif row == "empty_xml":
        xml = ""
    elif row == "malformed_xml":
        xml = "<annotation>\n<size><width>64</width></annotation>"
    elif row == "path_escape":
        xml = xml.replace(f"<filename>{row}.jpg", "<filename>../../outside.jpg")
    elif row == "absolute_path":
        xml = xml.replace(f"<filename>{row}.jpg", "<filename>/etc/hostname")
    elif row == "duplicate_listing":
        return "clean_00"
    ann.write_text(xml)
    return row


# --- COCO ----------------------------------------------------------------------------------

COCO_ERRORS = {
    "nan_coordinate": r"instances_train.json: images\[\d+\] \(nan_coordinate.jpg\): "
    r"annotations\[\d+\].bbox: non-finite coordinate",
    "unknown_category": r"instances_train.json: annotations\[\d+\].category_id: unknown category 5",
    "unknown_image_id": r"instances_train.json: annotations\[\d+\].image_id: unknown image id 999",
    "duplicate_image_id": r"instances_train.json: images\[\d+\].id: duplicate image id 1",
    "duplicate_annotation_id": r"instances_train.json: annotations\[\d+\].id: duplicate annotation",
    "missing_images": r"instances_train.json: images: missing",
    "missing_categories": r"instances_train.json: categories: missing",
    "malformed_json": r"instances_train.json: malformed JSON \(line 1, column",
    "empty_json": r"instances_train.json: malformed JSON \(line 1, column 1\)",
    "path_escape": r"instances_train.json: images\[\d+\].file_name: '../x.jpg' resolves outside",
    "absolute_path": r"instances_train.json: images\[\d+\].file_name: '/etc/hostname' resolves",
    "size_mismatch": r"images\[\d+\] \(size_mismatch.jpg\): size: annotated 100x80",
}


def write_messy_coco(root: Path, error: str | None = None) -> Path:
    """``annotations/instances_{train,val}.json`` with images in ``train/`` and ``val/``."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (root / split).mkdir(exist_ok=True)
    items = default_items()
    extra = Item(error) if error and error not in ("path_escape", "absolute_path") else None
    data = _coco_json(root / "train", items + ([extra] if extra else []))
    text = json.dumps(data)
    if error is not None:
        text = _coco_error(data, error, extra)
    (root / "annotations/instances_train.json").write_text(text)
    val = [i for i in items if i.name.startswith("clean_")][:8]
    (root / "annotations/instances_val.json").write_text(json.dumps(_coco_json(root / "val", val)))
    return root


def _coco_json(folder: Path, items: list[Item]) -> dict:
    label_to_id = {name: cid for name, cid in zip(CLASSES, COCO_IDS)}
    images, annotations = [], []
    for image_id, item in enumerate(items, 1):
        filename = item.name + _extension(item)
        _write_image(folder / filename, item)
        width, height = _size(item)
        images.append({"id": image_id, "file_name": filename, "width": width, "height": height})
        for k, (box, cls) in enumerate(zip(item.boxes, item.classes)):
            x1, y1, x2, y2 = (float(v) for v in box)
            crowd = item.difficult[k] if item.difficult else 0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label_to_id[cls],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": abs((x2 - x1) * (y2 - y1)),
                    "iscrowd": crowd,
                }
            )
    categories = [{"id": cid, "name": n} for n, cid in zip(CLASSES, COCO_IDS)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _coco_error(data: dict, row: str, extra: Item | None) -> str:
    last_ann = data["annotations"][-1]
    if row == "nan_coordinate":
        last_ann["bbox"][0] = float("nan")  # json.dumps writes NaN, which json.loads accepts
    elif row == "unknown_category":
        last_ann["category_id"] = 5
    elif row == "unknown_image_id":
        last_ann["image_id"] = 999
    elif row == "duplicate_image_id":
        data["images"][-1]["id"] = 1
    elif row == "duplicate_annotation_id":
        last_ann["id"] = 1
    elif row in ("missing_images", "missing_categories"):
        del data[row.split("_")[1]]
    elif row == "malformed_json":
        return json.dumps(data)[:-10]
    elif row == "empty_json":
        return ""
    elif row == "path_escape":
        data["images"][-1]["file_name"] = "../x.jpg"
    elif row == "absolute_path":
        data["images"][-1]["file_name"] = "/etc/hostname"
    elif row == "size_mismatch":
        data["images"][-1].update(width=100, height=80)
    return json.dumps(data)
