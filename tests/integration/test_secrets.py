"""A fake credential in the environment never reaches a checkpoint, a log, the run folder or
the offline ClearML session: interpolated, the run is refused; typed literally, it is scrubbed."""

import subprocess
import sys

import pytest

from tests.conftest import TINY, clean_env

FAKE = "fake-secret-4b1d8e6a"


def _run(tmp_path, data_root, *overrides):
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf),
                    CLEARML_OFFLINE_MODE="1", CLEARML_API_SECRET_KEY=FAKE, MY_SERVICE_TOKEN=FAKE)
    args = [f"paths.root_dir={tmp_path}", f"data.source.root={data_root}",
            *(f"++data.source.{k}={v}" for k, v in TINY.items()),
            "data.num_workers=0", "data.batch_size=4", "model.net.min_size=96",
            "model.net.max_size=96", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1", "test=false", *overrides]  # fmt: skip
    return subprocess.run([sys.executable, "-m", "lightdet.train", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _files_holding(root, text):
    needle = text.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_an_interpolated_credential_is_refused_and_a_literal_one_scrubbed(tmp_path, tiny_shapes):
    refused = _run(tmp_path, tiny_shapes, "task_name=${oc.env:CLEARML_API_SECRET_KEY}",
                   "logger.clearml.tags=[${oc.env:MY_SERVICE_TOKEN}]")
    assert refused.returncode == 1
    assert "the resolver 'oc.env:CLEARML_API_SECRET_KEY' is not allowed" in refused.stderr
    assert not (tmp_path / "logs").exists()

    typed = _run(tmp_path, tiny_shapes, f"task_name=run-{FAKE}", f"logger.clearml.tags=[{FAKE}]")
    assert typed.returncode == 0, typed.stderr[-3000:]
    (checkpoint,) = (tmp_path / "logs" / "run-REDACTED" / "runs").glob("*/checkpoints/best-*.ckpt")
    session = next((tmp_path / "clearml" / "offline").glob("*/task.json"))
    assert session.read_text().count("REDACTED") >= 2  # the task name and tag were recorded
    assert FAKE not in typed.stdout + typed.stderr
    assert _files_holding(tmp_path, FAKE) == []  # checkpoints, logs, .hydra/, session, zips
    assert checkpoint.stat().st_size > 0 and "held a credential's value" in typed.stdout + typed.stderr
