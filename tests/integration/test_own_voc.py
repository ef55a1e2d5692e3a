"""A newcomer's own VOC folder (LabelImg's layout: XML beside each image, own classes, no split
lists) trains with `DATA=voc ARGS="data.source.roots=[<folder>]"` and nothing else about data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import clean_env
from tests.unit.data.test_voc_folders import write_own_voc


@pytest.mark.slow
def test_own_voc_folder_trains_with_only_its_roots(tmp_path):
    root = write_own_voc(tmp_path / "my cells", n=10)
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    command = [
        sys.executable,
        "-m",
        "lightdet.train",
        "data=voc",
        f"data.source.roots=[{root}]",
        # size and length of the run only: nothing about the data
        f"paths.root_dir={tmp_path}",
        "model.net.min_size=96",
        "model.net.max_size=96",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "test=false",
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "3 classes from the training split's objects: Platelets, RBC, WBC" in output
    assert "a seeded split of its 10 annotated images, 8 train / 2 val" in output

    (last,) = tmp_path.rglob("last.ckpt")
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["class_names"] == ["Platelets", "RBC", "WBC"]
    data = ckpt["DetectionDataModule"]
    assert data["class_names"] == ["Platelets", "RBC", "WBC"]
    split = data["made_splits"][str(root)]
    assert len(split["train"]) == 8 and len(split["val"]) == 2
    assert sorted(split["train"] + split["val"]) == [f"cells_{i:03d}" for i in range(10)]

    run = last.parent.parent  # <run>/checkpoints/last.ckpt
    for name in ("train", "val"):  # the lists, to repeat the run with them
        assert (run / "splits" / f"{name}.txt").read_text().split() == split[name]
    (session,) = [p for p in (tmp_path / "clearml" / "offline").iterdir() if p.is_dir()]
    assert (run / "clearml_session.txt").read_text().strip() == str(session)  # for make clean
    recorded = json.loads((session / "task.json").read_text())["configuration"]["Dataset"]
    assert "made_splits" in recorded["value"] and split["val"][0] in recorded["value"]

    # issue 34: the README's export command, with the checkpoint alone, verifies on the
    # checkpoint's own data (it verified on the default shapes data and failed on the classes)
    (best,) = run.glob("checkpoints/best-*.ckpt")
    export = [
        sys.executable,
        "-m",
        "lightdet.export",
        f"ckpt_path={best}",
        f"paths.root_dir={tmp_path}",
    ]
    proc = subprocess.run(export, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "data: the checkpoint's (lightdet.data.sources.VOCSource)" in output
    assert "3 images" in output and f"of the val split of VOCSource ['{root}']" in output
    assert "PASSED: the file is usable" in output
