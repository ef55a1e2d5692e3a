"""Commands whose input cannot work end in one line naming the problem and the fix, exit
non-zero, and leave nothing behind: no run folder, no ClearML task, no offline session."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import clean_env


def _run(tmp_path, *args: str):
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    return subprocess.run(
        [sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _one_line(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    hint = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
    assert lines[1:] in ([], [hint]), proc.stderr[-3000:]  # Hydra's hint after its one line
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["lightdet.evaluate", "split=test"],
            "split=test: the data (ShapesSource) has no test split; use split=val, or set "
            "data.source.num_test=<images>",
        ),
        (
            ["lightdet.evaluate", "split=test", "data=voc"],
            "split=test: the data (VOCSource) has no test split; use split=val, or set "
            "data.source.test=<its split name>",
        ),
        (
            ["lightdet.train", "logger.clearml.remote_queue=gpu"],
            "logger.clearml.remote_queue=gpu: no ClearML server is configured; run `clearml-init`",
        ),
    ],
    ids=["evaluate-test-split-shapes", "evaluate-test-split-voc", "remote-without-server"],
)
def test_a_command_that_cannot_work_is_one_line_and_leaves_nothing(tmp_path, args, message):
    ckpt = tmp_path / "given.ckpt"  # a readable checkpoint without a data config of its own
    torch.save({"state_dict": {}, "hyper_parameters": {"config": {}}}, ckpt)
    proc = _run(
        tmp_path,
        *args,
        f"ckpt_path={ckpt}" if "evaluate" in args[0] else "seed=1",
        f"paths.root_dir={tmp_path / 'root'}",
    )
    assert message in _one_line(proc)
    assert not (tmp_path / "root").exists() and not (tmp_path / "clearml").exists()


def test_clearml_import_without_a_server_or_a_session_is_one_line(tmp_path):
    session = tmp_path / "offline-1"
    session.mkdir()
    (session / "task.json").write_text("{}")
    line = _one_line(_run(tmp_path, "lightdet.tracking.server", str(session)))
    assert line.startswith("clearml-import: no ClearML server is configured; run `clearml-init`")
    line = _one_line(_run(tmp_path, "lightdet.tracking.server", str(tmp_path / "nothing.zip")))
    assert line.startswith(f"SESSION={tmp_path / 'nothing.zip'}: no such offline session")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clearml.conf", "offline-1"]
