"""`make config` prints and checks the training config without making anything; a mistyped
key gets the closest keys; `make doctor` describes the machine."""

from __future__ import annotations

import re
import subprocess
import sys

import torch

from tests.conftest import clean_env
from tests.unit.data.test_voc_folders import write_own_voc


def _run(tmp_path, module: str, *args: str):
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_config_prints_and_checks_the_run_and_makes_nothing(tmp_path):
    root = write_own_voc(tmp_path / "cells", n=20)
    (root / "cells_003.jpg").write_bytes(b"not a jpeg")  # skipped: which file, said
    args = ["model=ssd", "data=voc", f"data.source.roots=[{root}]", "data.source.split_seed=1"]
    proc = _run(tmp_path, "lightdet.show_config", *args, f"paths.root_dir={tmp_path / 'root'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "_target_:" not in out  # the YAML only on request (it buried the verdict)
    assert "classes: 3: Platelets, RBC, WBC" in out  # read from the data
    assert "model: lightdet.models.ssd.build_ssd (12.6 M parameters, 4 labels" in out
    lines = out.splitlines()
    (skipped,) = [i for i, line in enumerate(lines) if "skipped 1 (image_unreadable)" in line]
    assert str(root / "cells_003.jpg") in lines[skipped + 1]  # the file, not only a count
    assert lines[-1].startswith("config OK: `make train` with the same arguments runs it")
    assert not (tmp_path / "root").exists() and not (tmp_path / "clearml").exists()
    shown = _run(
        tmp_path, "lightdet.show_config", "--yaml", *args, f"paths.root_dir={tmp_path / 'r'}"
    )
    assert "_target_: lightdet.models.ssd.build_ssd" in shown.stdout  # YAML=1: printed first
    assert shown.stdout.rstrip().splitlines()[-1].startswith("config OK")


def test_a_mistyped_key_gets_the_closest_keys(tmp_path):
    for command, key, hint in (
        (
            "lightdet.show_config",
            "model.net.focal_alhpa",
            "Did you mean model.net.focal_alpha or model.net.focal_gamma?",
        ),
        ("lightdet.train", "trainer.max_epoch", "Did you mean trainer.max_epochs?"),
    ):
        proc = _run(tmp_path, command, f"{key}=2", f"paths.root_dir={tmp_path / 'root'}")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert f"Could not override '{key}'" in proc.stderr and hint in proc.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "clearml").exists()


def test_doctor_describes_the_machine(tmp_path):
    proc = _run(tmp_path, "lightdet.doctor")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in proc.stdout.splitlines())
    assert rows["torch"].startswith(f"{torch.__version__} (")
    assert rows["torch threads"] == str(torch.get_num_threads())
    assert rows["ClearML server"].startswith("not configured")
    assert rows["CPU bfloat16"].startswith(
        (
            "native (AVX512-BF16/AMX): precision auto trains in bf16-mixed",
            "emulated: precision auto trains in 32-true",
        )
    )
    assert (
        "3x3 convolutions in bf16 at" in rows["CPU bfloat16"] and "over 1 min" in rows["CPU load"]
    )
    assert "GiB free of" in rows["disk logs/"] and "GiB free of" in rows["disk data/"]


def _all_boxes_row(out: str, table: str) -> tuple[float, ...]:
    section = out.split(table, 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("all boxes"))
    return tuple(float(x) for x in row.split()[3:])  # after "all boxes <count>"


def test_anchors_reports_the_coverage_and_an_override_that_reproduces_its_fit(
    tmp_path, tiny_shapes
):
    data = [
        f"data.source.root={tiny_shapes}",
        *(
            f"++data.source.{k}={v}"
            for k, v in {
                "num_train": 16,
                "num_val": 8,
                "num_test": 4,
                "image_size": 96,
                "max_object_size": 48.0,
            }.items()
        ),
        "model.net.min_size=96",
        "model.net.max_size=96",
        f"paths.root_dir={tmp_path / 'root'}",
    ]
    proc = _run(tmp_path, "lightdet.anchors", *data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert (
        "9 anchors per location on 5 levels; matcher: foreground at IoU >= 0.5, "
        "background below 0.4" in out
    )
    count = int(re.search(r"on (\d+) train boxes of (\d+) images", out).group(1))
    assert count > 16  # the tiny shapes have up to 6 objects per image
    default = _all_boxes_row(out, "the model's anchors:")  # BPR, share >= 0.4, mean IoU
    assert 0 <= default[0] <= default[1] <= 1 and 0 < default[2] < 1
    override = re.search(r'make train ARGS="(.*)"', out).group(1).split()
    fitted = _all_boxes_row(out, "fitted anchors:")
    assert (fitted[0], fitted[2]) > (default[0], default[2])  # better BPR, or IoU at equal BPR
    again = _run(tmp_path, "lightdet.anchors", *data, *override)  # the printed override...
    assert again.returncode == 0, again.stderr[-3000:]
    assert _all_boxes_row(again.stdout, "the model's anchors:") == fitted  # ...gives that fit
    bad = _run(tmp_path, "lightdet.anchors", *data, "anchors.split=test2")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        "anchors: anchors.split=test2: expected train, val or test"
    )
