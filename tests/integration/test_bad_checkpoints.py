"""A missing or broken checkpoint given to a command: one line naming the path and what it
is, exit 1, and nothing made (no run folder, no ClearML session)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import clean_env


@pytest.mark.parametrize(
    ("command", "content", "message"),
    [
        ("evaluate", None, "no such checkpoint file"),
        ("predict", "truncated", "truncated or damaged checkpoint"),
        ("train", b"epoch=3 loss=0.1\n", "not a checkpoint"),
        ("train", "weights only", "holds weights only (a best checkpoint), no training state"),
    ],
)
def test_a_broken_checkpoint_is_one_line_and_nothing_is_made(tmp_path, command, content, message):
    ckpt = tmp_path / "given.ckpt"
    if content == "weights only":  # a best checkpoint, given to resume from
        torch.save({"state_dict": {"net.w": torch.zeros(3)}, "hyper_parameters": {}}, ckpt)
    elif content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:500])
    elif content is not None:
        ckpt.write_bytes(content)
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    extra = [f"input={tmp_path}"] if command == "predict" else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            f"lightdet.{command}",
            f"ckpt_path={ckpt}",
            f"paths.root_dir={tmp_path / 'root'}",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith(f"ckpt_path: {ckpt}: ") and message in first, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "clearml").exists()
