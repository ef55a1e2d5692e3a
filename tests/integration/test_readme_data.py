"""The README's examples for one's own VOC, YOLO and COCO data, run as written (only the
dataset folder replaced by a real one): `make config` with the same arguments indexes them."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.unit.data.test_voc_folders import write_own_voc

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = {  # the README's line, by the folder it names
    "my_cells": r'make train DATA=voc ARGS="(data\.source\.roots=\[/datasets/my_cells\])"',
    "mydata": r'make train DATA=yolo ARGS="(data\.source\.root=/datasets/mydata)"',
    "coco": r'make train DATA=coco ARGS="(data\.source\.root=/datasets/coco)"',
}


def _datasets(tmp_path: Path, tiny_shapes: Path) -> Path:
    """``/datasets`` of the examples: a VOC folder of one's own (XML beside the images), a
    YOLO folder and a COCO folder with COCO's split names."""
    root = tmp_path / "datasets"
    write_own_voc(root / "my_cells", n=10)
    shutil.copytree(tiny_shapes / "YOLO", root / "mydata")
    coco = root / "coco"
    (coco / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        shutil.copy(
            tiny_shapes / "COCO" / "annotations" / f"instances_{split}.json",
            coco / "annotations" / f"instances_{split}2017.json",
        )
        shutil.copytree(tiny_shapes / "COCO" / split, coco / f"{split}2017")
    return root


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("my_cells", ["classes: 3: Platelets, RBC, WBC", "images: train 8, val 2"]),
        ("mydata", ["classes: 3: circle, square, triangle", "images: train 16, val 8"]),
        ("coco", ["classes: 3: circle, square, triangle", "images: train 16, val 8"]),
    ],
)
def test_the_readmes_own_data_examples_work_as_written(tmp_path, tiny_shapes, folder, expected):
    line = re.search(EXAMPLES[folder], README.read_text())
    assert line, f"the README no longer shows {EXAMPLES[folder]}"
    datasets = _datasets(tmp_path, tiny_shapes)
    data = re.search(r"DATA=(\w+)", line.group(0)).group(1)
    args = [a.replace("/datasets", str(datasets)) for a in shlex.split(line.group(1))]
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightdet.show_config",
            f"data={data}",
            *args,
            f"paths.root_dir={tmp_path / 'root'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in expected:
        assert text in proc.stdout, proc.stdout[-2000:]
    assert not (tmp_path / "root").exists()
