"""What a default CPU training run prints: nothing that needs no action, a line per validation,
and the summary last."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import TINY, clean_env

NOISE = (
    "LeafSpec",
    "💡",
    "litlogger",
    "litmodels",
    "NVML",
    "GPU monitoring",
    "v_num",
    "model summary",
    "flops_per_batch",
    "Can't get url information",
)


@pytest.mark.slow
def test_a_default_run_prints_no_noise_a_line_per_validation_and_the_summary_last(
    tmp_path, tiny_shapes
):
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    command = [
        sys.executable,
        "-m",
        "lightdet.train",
        f"paths.root_dir={tmp_path}",
        # the default run, shorter: its length and the data's size only
        f"data.source.root={tiny_shapes}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "model.net.min_size=96",
        "model.net.max_size=96",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "test=false",
    ]
    proc = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = [line for line in re.split(r"[\r\n]+", proc.stdout) if line.strip()]
    for noise in NOISE:
        assert noise not in proc.stdout, noise
    first = lines[:20]
    assert not [line for line in first if re.search(r"warn", line, re.IGNORECASE)], first

    validations = re.findall(
        r"epoch (\d) \((\d)/2\)  val/map (\d\.\d{4})  map_50 \d\.\d{4}  "
        r"map_small \d\.\d{4}  train/loss \d+\.\d{3} \| best (\d\.\d{4}) "
        r"\(epoch (\d)\) \| \d+m\d\ds, about \d+m\d\ds left",
        proc.stdout,
    )
    assert [(e, n) for e, n, *_ in validations] == [("0", "1"), ("1", "2")], proc.stdout[-3000:]
    best = max(float(v[2]) for v in validations)
    assert float(validations[-1][3]) == best

    # the summary is the last thing printed: between rules, from "training finished" to "next"
    start = max(i for i, line in enumerate(lines) if line.startswith("training finished in"))
    end = [line for line in lines[start:] if set(line.strip()) != {"-"}]
    assert f"best val/map = {best:.4f}" in end[0] and set(lines[-1]) == {"-"}
    assert [line.split()[0] for line in end[1:]] == [
        "best",
        "checkpoint",
        "pictures",
        "ClearML",
        "upload",
        "disk",
        "next",
    ]
    assert end[-1].startswith("next        make eval CKPT=")
