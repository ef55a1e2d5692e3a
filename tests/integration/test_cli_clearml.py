"""The real entry point, run as users run it, with its offline ClearML session read back."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import TINY, offline_scalars


def _run_cli(tmp_path, tiny_shapes, *overrides):
    cache = tmp_path / "clearml"
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env.update(
        CLEARML_CACHE_DIR=str(cache), CLEARML_CONFIG_FILE=str(conf)
    )  # no credentials: offline
    args = [
        f"paths.root_dir={tmp_path}",
        f"data.source.root={tiny_shapes}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=0", "data.batch_size=4", "model.net.min_size=96", "model.net.max_size=96",
        "trainer.max_epochs=2", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1", "test=false", *overrides,
    ]  # fmt: skip
    command = [sys.executable, "-m", "lightdet.train", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (session,) = [p for p in (cache / "offline").iterdir() if p.is_dir()]
    return proc, session


@pytest.mark.slow
def test_plain_cross_entropy_run_is_recorded_offline(tmp_path, tiny_shapes):
    proc, session = _run_cli(
        tmp_path, tiny_shapes, "model.net.focal_gamma=0", "model.net.focal_alpha=-1"
    )
    output = proc.stdout + proc.stderr  # Hydra logs to stdout
    assert "recording offline in" in output and "clearml-import" in output
    task = json.loads((session / "task.json").read_text())

    hydra = {k: v["value"] for k, v in task["hyperparams"]["Hydra"].items()}
    assert hydra["model.net.focal_gamma"] == "0" and hydra["model.net.focal_alpha"] == "-1"
    assert hydra["model.optimizer.lr"] == "0.002" and hydra["model.net.prior_probability"] == "0.01"

    omegaconf = yaml.safe_load(task["configuration"]["OmegaConf"]["value"])  # the full config
    assert (
        omegaconf["model"]["net"]["focal_gamma"] == 0
        and omegaconf["model"]["net"]["focal_alpha"] == -1
    )
    dataset = yaml.safe_load(task["configuration"]["Dataset"]["value"])
    assert dataset["class_names"] == ["circle", "square", "triangle"]

    events = offline_scalars(session)
    series = {(e["metric"], e["variant"]) for e in events}
    for name in ("loss", "loss_classification", "loss_bbox_regression", "lr"):
        assert ("train", name) in series
    for name in ("map", "map_50", "map_75", "ap_circle", "ap_square", "ap_triangle"):
        assert ("val", name) in series
    val_iters = sorted({e["iter"] for e in events if (e["metric"], e["variant"]) == ("val", "map")})
    assert len(val_iters) == 2  # one point per validation, against the global step
