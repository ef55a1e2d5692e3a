"""Checkpoints written whole or not at all, broken ones named in one line, and RESUME=auto
past a broken last.ckpt: with real kills, a real write limit, a real second file system."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from lightdet.guard import (
    BadCheckpointFileError,
    check_checkpoint_file,
    inspect_checkpoint,
    load_checkpoint,
)
from lightdet.lightning.checkpoint_io import atomic_save
from lightdet.lightning.resume import find_last_checkpoint

_WRITER = """
import sys, torch
from lightdet.lightning.checkpoint_io import atomic_save
path, megabytes = sys.argv[1], int(sys.argv[2])
print("writing", flush=True)
while True:  # until killed: one big checkpoint after another
    atomic_save({"state_dict": {"w": torch.ones(megabytes * 2**18)}, "epoch": 2}, path)
"""

_LIMITED = """
import resource, signal, sys, torch
from lightdet.lightning.checkpoint_io import atomic_save
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))  # no file above 1 MiB: a full disk
try:
    atomic_save({"state_dict": {"w": torch.ones(2**20)}, "epoch": 2}, sys.argv[1])
except Exception as err:  # torch turns the EFBIG of its write into a RuntimeError
    print("failed:", "File too large" in repr(err.__context__) + repr(err))
"""


def _small(tmp_path: Path, epoch: int = 1) -> Path:
    """A small resumable last.ckpt (a training state: optimizer states included)."""
    path = tmp_path / "checkpoints" / "last.ckpt"
    state = {"state_dict": {"w": torch.arange(4.0)}, "optimizer_states": [{}], "epoch": epoch}
    atomic_save(state, path)
    return path


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm (a tmpfs)")
def test_a_kill_during_a_write_on_another_file_system_leaves_the_old_checkpoint(tmp_path):
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/dev/shm"))  # a tmpfs, not the temporary folder's disk
    try:
        assert os.stat(folder).st_dev != os.stat(tmp_path).st_dev
        path = _small(folder)
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), "400"], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline().strip() == "writing"
        partial = None
        for _ in range(400):  # until the big file is half written
            found = list(path.parent.glob(".last.ckpt.*.partial"))
            if found and found[0].exists() and found[0].stat().st_size > 50 * 2**20:
                partial = found[0]
                break
            time.sleep(0.01)
        assert partial is not None, "the writer never got going"
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert load_checkpoint(path)["epoch"] == 1  # the previous one, whole
        assert partial.exists()  # the killed writer's leftover...
        _small(folder, epoch=3)
        assert not list(path.parent.glob("*.partial"))  # ...gone with the next save
        assert load_checkpoint(path)["epoch"] == 3
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_a_full_disk_during_a_save_leaves_the_old_checkpoint_and_no_leftover(tmp_path):
    path = _small(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "failed: True", proc.stdout + proc.stderr  # EFBIG
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_broken_files_are_named_in_one_line(tmp_path):
    good = _small(tmp_path)
    assert check_checkpoint_file(good) == good
    data = good.read_bytes()
    cases = {
        "missing.ckpt": (None, "no such checkpoint file"),
        "empty.ckpt": (b"", r"empty file \(0 bytes\)"),
        "notes.ckpt": (b"just some text\n", r"not a checkpoint .*starts with b'just'"),
        "cut.ckpt": (data[: len(data) // 2], "truncated or damaged checkpoint"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(BadCheckpointFileError, match=message) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BadCheckpointFileError, match="not a file"):
        check_checkpoint_file(tmp_path)


def test_a_zip_bomb_is_refused_before_loading(tmp_path):
    bomb = tmp_path / "bomb.ckpt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (64 * 2**20))  # 64 MiB in ~64 KiB
    assert bomb.stat().st_size < 2**20
    with pytest.raises(BadCheckpointFileError, match=r"declares 67,108,864 bytes inside a"):
        load_checkpoint(bomb)


def test_resume_auto_takes_the_newest_checkpoint_that_is_whole(tmp_path):
    runs = tmp_path / "runs"
    older = _small(runs / "2026-12-01_10-00-00", epoch=4)
    time.sleep(0.02)
    newer = _small(runs / "2026-12-02_10-00-00", epoch=6)
    newer.write_bytes(newer.read_bytes()[:100])  # what a kill during an old-style write left
    with pytest.warns(UserWarning, match=rf"skipped {newer}: truncated or damaged"):
        assert find_last_checkpoint(runs) == older
    older.write_bytes(b"")
    with (
        pytest.warns(UserWarning),
        pytest.raises(FileNotFoundError, match="no complete checkpoint"),
    ):
        find_last_checkpoint(runs)


def test_resume_auto_passes_over_a_last_checkpoint_that_cannot_resume(tmp_path):
    """A whole last.ckpt holding no training state (a mapping with nothing in it, weights
    only) is named in a warning and passed over for the next resumable one."""
    runs = tmp_path / "runs"
    resumable = _small(runs / "2026-12-01_10-00-00", epoch=4)
    time.sleep(0.02)
    empty = _small(runs / "2026-12-02_10-00-00")
    atomic_save({}, empty)
    time.sleep(0.02)
    weights = _small(runs / "2026-12-03_10-00-00")
    atomic_save({"state_dict": {"w": torch.arange(4.0)}, "epoch": 9}, weights)
    with pytest.warns(UserWarning) as caught:
        assert find_last_checkpoint(runs) == resumable
    said = [str(w.message) for w in caught]
    assert said == [
        f"ckpt_path=auto: skipped {p}: no training state to resume" for p in (weights, empty)
    ]


def test_resume_auto_never_falls_back_to_a_weights_only_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    older = _small(runs / "2026-12-01_10-00-00", epoch=4)
    atomic_save(
        {"state_dict": {"w": torch.arange(4.0)}, "optimizer_states": [{}], "epoch": 4}, older
    )  # a full training state
    time.sleep(0.02)
    newer = _small(runs / "2026-12-02_10-00-00", epoch=6)
    time.sleep(0.02)
    best = newer.with_name("best-epoch005.ckpt")  # what ModelCheckpoint keeps: weights only
    atomic_save({"state_dict": {"w": torch.arange(4.0)}, "epoch": 5}, best)
    newer.write_bytes(newer.read_bytes()[:100])
    with pytest.warns(UserWarning, match=rf"skipped {newer}: truncated or damaged"):
        assert find_last_checkpoint(runs) == older  # not the newer, whole, weights-only best
    assert inspect_checkpoint(older).resumable
    assert not inspect_checkpoint(best).resumable
    with pytest.raises(BadCheckpointFileError, match="truncated or damaged"):
        inspect_checkpoint(newer)


def test_the_top_k_clean_up_deletes_only_inside_a_folder_lightdet_created(tmp_path):
    from lightdet import outputs
    from lightdet.lightning.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.ckpt").write_text("mine")
    io.remove_checkpoint(user / "notes.ckpt")
    assert (user / "notes.ckpt").read_text() == "mine"
    ours = outputs.mark(tmp_path / "run" / "checkpoints", "checkpoints")
    (ours / "best-epoch000.ckpt").write_text("old best")
    io.remove_checkpoint(ours / "best-epoch000.ckpt")
    assert not (ours / "best-epoch000.ckpt").exists()


def test_resume_auto_takes_only_a_stopped_run_on_the_same_data(tmp_path):
    """Issue 34: the pool is the model's runs, so RESUME=auto "resumed" a finished run on
    other data (0 steps, a class-mismatch traceback) and the interrupted run was unreachable.
    A run that ended and a run on other data are now passed over, each named."""
    from lightdet.lightning.resume import ResumeCheckpoint, finished_marker

    mine = {"_target_": "lightdet.data.sources.VOCSource", "roots": ["/data/cells"]}
    other = {"_target_": "lightdet.data.sources.VOCSource", "roots": ["/data/cars"]}

    def run(name: str, source: dict) -> Path:
        path = tmp_path / "runs" / name / "checkpoints" / "last.ckpt"
        state = {
            "state_dict": {"w": torch.arange(4.0)},
            "optimizer_states": [{}],
            "epoch": 3,
            "hyper_parameters": {"config": {"data": {"source": source}}},
        }
        atomic_save(state, path)
        time.sleep(0.02)
        return path

    stopped = run("2026-12-01_10-00-00", mine)
    ended = run("2026-12-02_10-00-00", mine)
    elsewhere = run("2026-12-03_10-00-00", other)
    callback = ResumeCheckpoint()  # how a run that reaches its end marks its last.ckpt
    callback.last_path = str(ended)
    callback.on_fit_end(type("T", (), {"is_global_zero": True, "global_step": 90})(), None)
    assert finished_marker(ended).read_text() == '{"finished_at_step": 90}\n'
    with pytest.warns(UserWarning) as caught:
        assert find_last_checkpoint(tmp_path / "runs", data=mine) == stopped
    assert [str(w.message) for w in caught] == [
        f"ckpt_path=auto: skipped {elsewhere}: trained on other data (data.source differs)",
        f"ckpt_path=auto: skipped {ended}: its run ended (nothing to resume)",
    ]
    finished_marker(stopped).write_text("{}\n")
    with (
        pytest.warns(UserWarning),
        pytest.raises(FileNotFoundError, match="stopped before its end on this data"),
    ):
        find_last_checkpoint(tmp_path / "runs", data=mine)
