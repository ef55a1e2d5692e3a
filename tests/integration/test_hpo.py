"""`make hpo` without a server: a local Optuna study of tiny trials, resumed on a second run."""

import json
import subprocess
import sys

import optuna
import pytest
import yaml

from tests.conftest import TINY, clean_env


def _run_hpo(tmp_path, data_root, n_trials: int):
    train = [
        f"data.source.root={data_root}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=0",
        "data.batch_size=4",
        "model.net.min_size=96",
        "model.net.max_size=96",
        "+model.net.score_thresh=0.001",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=1",
        "test=false",
        "callbacks.throughput.window_size=2",
        "+trainer.enable_progress_bar=false",
    ]
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    command = [
        sys.executable,
        "-m",
        "lightdet.hpo",
        "backend=local",
        f"paths.root_dir={tmp_path}",
        f"hpo.n_trials={n_trials}",
        "hpo.study_name=tiny",
        "hpo.pruner.n_startup_trials=1",
        "hpo.train_overrides=" + json.dumps(train),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = sorted((tmp_path / "logs" / "hpo" / "tiny").glob("20*"))[-1:]
    return proc, run


@pytest.mark.slow
def test_local_study_runs_resumes_and_writes_results(tmp_path, tiny_shapes):
    proc, run = _run_hpo(tmp_path, tiny_shapes, n_trials=2)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/logs/hpo/tiny.db")
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
    assert all(t.intermediate_values for t in study.trials)  # val/map reported for pruning
    assert {"model.net.focal_alpha", "model.net.focal_gamma", "model.optimizer.lr"} == set(
        study.trials[0].params
    )

    rows = (run / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,value,seconds") and len(rows) == 3
    best = yaml.safe_load((run / "best_config.yaml").read_text())
    assert best["model"]["net"]["focal_gamma"] == pytest.approx(
        study.best_trial.params["model.net.focal_gamma"]
    )
    assert (run / "optimization_history.png").is_file() and (
        run / "parallel_coordinate.png"
    ).is_file()
    sessions = [p for p in (tmp_path / "clearml" / "offline").iterdir() if p.is_dir()]
    assert len(sessions) == 2 + 1  # one task per trial, plus the study's summary
    # every trial keeps its best weights; only the best trial keeps its training state
    best_trial = max(
        (t for t in study.trials if t.value is not None), key=lambda t: (t.value, -t.number)
    )
    for t in study.trials:
        files = {p.name for p in (run / f"trial_{t.number:03d}" / "checkpoints").iterdir()}
        assert any(n.startswith("best-epoch") for n in files), files
        assert ("last.ckpt" in files) == (t.number == best_trial.number), (t.number, files)

    _run_hpo(tmp_path, tiny_shapes, n_trials=3)  # again, asking for one more trial
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/logs/hpo/tiny.db")
    assert len(study.trials) == 3  # resumed: the first two were kept, one was added
    assert study.trials[2].params not in [t.params for t in study.trials[:2]]  # and it is a new one
