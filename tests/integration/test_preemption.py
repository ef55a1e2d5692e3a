"""Preemption: a real training process is sent SIGTERM (or SIGINT) mid-epoch, exits non-zero
with a checkpoint, and `ckpt_path=auto` resumes it to the same end as an uninterrupted run."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightdet.guard import inspect_checkpoint
from tests.conftest import TINY, clean_env, offline_scalars

REPO = Path(__file__).resolve().parents[2]
BATCHES_PER_EPOCH = TINY["num_train"] // 4  # 16 images, batch 4


def _train(tmp_path, data_root, task, probe, *overrides):
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(
        CLEARML_CACHE_DIR=str(tmp_path / "clearml"),
        CLEARML_CONFIG_FILE=str(conf),
        CLEARML_OFFLINE_MODE="1",
        PYTHONPATH=str(REPO),
    )
    args = [
        f"paths.root_dir={tmp_path}",
        f"data.source.root={data_root}",
        f"task_name={task}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=1",
        "data.batch_size=4",
        "model.net.min_size=96",
        "model.net.max_size=96",
        "trainer.max_epochs=3",
        "+trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "test=false",
        "+trainer.enable_progress_bar=false",
        "callbacks.clearml_reports=null",
        "callbacks.clearml_models=null",
        "+callbacks.probe._target_=tests.integration.probe.StepProbe",
        f"+callbacks.probe.path={probe}",
        *overrides,
    ]
    command = [sys.executable, "-m", "tests.integration.train_with_probe", *args]
    return subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        start_new_session=True,
    )  # its own process group, for whole-group kills


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _ids_of_epoch(rows, epoch):
    return [i for r in rows if r["epoch"] == epoch for i in r["ids"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_shapes) -> list[dict]:
    """The reference: the same run, never stopped (trained once for every stop below)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    full = _train(folder, tiny_shapes, "full", folder / "full.jsonl")
    assert full.returncode == 0, full.stderr[-2000:]
    return _rows(folder / "full.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize(
    "signal_name,kill_at,whole_group",
    [
        ("SIGTERM", BATCHES_PER_EPOCH + 2, False),  # mid-way through the second epoch (epoch 1)
        ("SIGTERM", 2 * BATCHES_PER_EPOCH, False),  # on the last batch of epoch 1
        # Ctrl+C in a terminal: SIGINT to every process of the group, loader workers included
        ("SIGINT", BATCHES_PER_EPOCH + 2, True),
    ],
)
def test_interrupted_run_resumes_to_the_same_end_without_replaying_batches(
    tmp_path, tiny_shapes, uninterrupted, signal_name, kill_at, whole_group
):
    stopped = _train(
        tmp_path,
        tiny_shapes,
        "resume",
        tmp_path / "a.jsonl",
        f"+callbacks.probe.kill_at_step={kill_at}",
        f"+callbacks.probe.signal_name={signal_name}",
        f"+callbacks.probe.whole_group={whole_group}",
    )
    signum = getattr(signal, signal_name)
    assert stopped.returncode == 128 + signum, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    (ckpt_path,) = (tmp_path / "logs/resume/runs").glob("*/checkpoints/last.ckpt")
    ckpt = torch.load(ckpt_path, weights_only=True)
    finished_epoch = kill_at % BATCHES_PER_EPOCH == 0
    # Lightning's "epoch" is the epoch to run next once the stopped one is complete
    assert (ckpt["global_step"], ckpt["epoch"]) == (kill_at, 2 if finished_epoch else 1)
    assert "resume with ckpt_path=auto" in stopped.stdout + stopped.stderr

    resumed = _train(tmp_path, tiny_shapes, "resume", tmp_path / "b.jsonl", "ckpt_path=auto")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]

    before, after = (_rows(tmp_path / n) for n in ("a.jsonl", "b.jsonl"))
    reference = uninterrupted
    assert after[-1]["step"] == reference[-1]["step"] == 3 * BATCHES_PER_EPOCH
    assert after[-1]["epoch"] == reference[-1]["epoch"] == 2
    # the partly seen epoch: the resumed run trains exactly the batches not yet seen, in order
    assert [r["step"] for r in after][0] == kill_at + 1
    interrupted_epoch = _ids_of_epoch(before, 1) + _ids_of_epoch(after, 1)
    assert interrupted_epoch == _ids_of_epoch(reference, 1)
    assert len(set(interrupted_epoch)) == len(interrupted_epoch) == TINY["num_train"]
    assert (_ids_of_epoch(after, 1) == []) == finished_epoch
    # and the epochs around it match the uninterrupted run too (same permutation per epoch)
    assert _ids_of_epoch(before, 0) == _ids_of_epoch(reference, 0)
    assert _ids_of_epoch(after, 2) == _ids_of_epoch(reference, 2)
    # the resumed run writes its checkpoints into the stopped run's folder
    assert list((tmp_path / "logs/resume/runs").glob("*/checkpoints/last.ckpt")) == [ckpt_path]
    assert torch.load(ckpt_path, weights_only=True)["global_step"] == 3 * BATCHES_PER_EPOCH
    # one ClearML task for the stopped and the resumed run: its curves continue, no step twice
    (session,) = [p for p in (tmp_path / "clearml" / "offline").iterdir() if p.is_dir()]
    assert inspect_checkpoint(ckpt_path).task_id == session.name
    steps = sorted(
        e["iter"]
        for e in offline_scalars(session)
        if (e["metric"], e["variant"]) == ("train", "loss")
    )
    assert min(steps) < kill_at < max(steps) and max(steps) >= 3 * BATCHES_PER_EPOCH - 1
    assert steps == list(range(min(steps), max(steps) + 1))  # continuous, each step once
    assert "continuing task" in resumed.stdout + resumed.stderr


def _val_map_per_epoch(root: Path) -> dict[int, float]:
    import csv

    (results,) = root.glob("*/results/results.csv")
    return {
        int(r["epoch"]): float(r["val/map"])
        for r in csv.DictReader(results.open())
        if r.get("val/map")
    }


VAL_RUN = ["trainer.max_epochs=2", "++trainer.limit_val_batches=2"]


@pytest.fixture(scope="module")
def validated_reference(tmp_path_factory, tiny_shapes) -> Path:
    """The reference for the stops inside a validation: two epochs with two validation batches
    each, never stopped (its folder: ``logs/full/runs``, its batches ``full.jsonl``)."""
    folder = tmp_path_factory.mktemp("validated")
    full = _train(folder, tiny_shapes, "full", folder / "full.jsonl", *VAL_RUN)
    assert full.returncode == 0, full.stderr[-2000:]
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("stopped_epoch", [0, 1])
def test_a_stop_during_a_validation_resumes_into_that_validation(
    tmp_path, tiny_shapes, validated_reference, stopped_epoch
):
    """SIGTERM during an epoch's validation, then RESUME=auto: that validation runs again, the
    epochs after it train every batch an uninterrupted run trains, and the best checkpoint and
    metrics are an uninterrupted run's. (A stop in the last validation used to end the resumed
    run at once without them; a stop in an earlier one used to skip the next epoch's batches.)"""
    # one loader worker (the default of these tests): a stop in validation used to hang at exit
    stopped = _train(
        tmp_path,
        tiny_shapes,
        "val",
        tmp_path / "a.jsonl",
        *VAL_RUN,
        f"+callbacks.probe.kill_in_validation_of={stopped_epoch}",
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    (ckpt_path,) = (tmp_path / "logs/val/runs").glob("*/checkpoints/last.ckpt")
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["global_step"] == (stopped_epoch + 1) * BATCHES_PER_EPOCH
    assert any(
        v.get("pending_validation") for v in ckpt["callbacks"].values() if isinstance(v, dict)
    )

    resumed = _train(tmp_path, tiny_shapes, "val", tmp_path / "b.jsonl", *VAL_RUN, "ckpt_path=auto")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "validating it again" in resumed.stdout + resumed.stderr

    reference = _rows(validated_reference / "full.jsonl")
    before = _rows(tmp_path / "a.jsonl")
    after = _rows(tmp_path / "b.jsonl") if (tmp_path / "b.jsonl").exists() else []
    # no training batch of the stopped epoch again; every batch of the later ones, in order
    assert [r["epoch"] for r in after] == [
        r["epoch"] for r in reference if r["epoch"] > stopped_epoch
    ]
    assert before + after == reference
    assert torch.load(ckpt_path, weights_only=True)["global_step"] == 2 * BATCHES_PER_EPOCH

    done = _val_map_per_epoch(tmp_path / "logs/val/runs")
    expected = _val_map_per_epoch(validated_reference / "logs/full/runs")
    assert set(done) == set(expected) == {0, 1}
    assert done == pytest.approx(expected, abs=1e-6)  # the interrupted epoch's included
    best = {
        t: sorted(p.name for p in (root / "logs" / t / "runs").glob("*/checkpoints/best-*.ckpt"))
        for t, root in (("val", tmp_path), ("full", validated_reference))
    }
    assert best["val"] == best["full"] != []
