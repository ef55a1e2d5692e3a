"""`make compare` and `make study` on tiny data: a Hydra multirun of training cells, reused on a
second run, then latency, the table, the plots and one ClearML task for the study."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, clean_env, offline_scalars


def _run_study(tmp_path: Path, data_root: Path, *overrides: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf))
    args = [
        f"paths.root_dir={tmp_path}",
        f"data.source.root={data_root}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=0",
        "data.batch_size=4",
        "trainer.log_every_n_steps=1",
        "+trainer.enable_progress_bar=false",
        "+trainer.limit_val_batches=2",
        "callbacks.throughput.window_size=2",
        "model.scheduler.warmup_steps=2",
        "study.latency.repeats=3",
        "study.latency.warmup=1",
        "study.latency.images=2",
        "study.latency.batch_sizes=[1,2]",
        *overrides,
    ]
    command = [sys.executable, "-m", "lightdet.study", "-m", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def _table(folder: Path) -> dict[str, dict[str, str]]:
    rows = list(csv.DictReader((folder / "results.csv").open()))
    return {row["cell"]: row for row in rows}


def _sessions(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "clearml" / "offline").iterdir() if p.is_dir())


@pytest.mark.slow
def test_compare_trains_each_model_then_reuses_it(tmp_path, tiny_shapes):
    """Two models under one wall-clock budget, side by side (joblib launcher), then the same
    command again: nothing retrained, the same table; then an existing checkpoint scored."""
    budget = [
        "study=compare",
        "model=retinanet,ssd",
        "study.budget.minutes=0.15",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    ]
    proc = _run_study(tmp_path, tiny_shapes, *budget)
    study = tmp_path / "logs" / "studies" / "compare"
    results = json.loads((study / "results.json").read_text())["cells"]
    assert [c["label"] for c in results] == ["retinanet", "ssd"]
    table = _table(study)
    for cell in results:
        row = table[cell["label"]]
        assert cell["status"] == "finished" and cell["model"] == row["model"] == cell["label"]
        assert row["mAP"] == f"{cell['metrics']['val/map']:.4f}"  # the best epoch's val/map
        assert row["mAP small"] == f"{cell['metrics']['val/map_small']:.4f}"
        assert float(row["params (M)"]) > 1.0 and float(row["peak MiB"]) > 0
        for bs in (1, 2):
            timing = cell["speed"]["latency"][str(bs)]
            assert (
                timing["repeats"] == 3
                and timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"]
            )
            assert row[f"ms/img b{bs} (p10-p90)"].startswith(f"{timing['median_ms']:.1f} (")
        assert cell["task_id"] and row["ClearML task"] == cell["task_id"]
        # the wall-clock budget drives the schedule: warmed up, then decaying before the time
        # ran out (every step's rate, as the cell's task recorded it). How close to its end
        # the schedule comes depends on how long one step is against the budget: checked by
        # test_recipe's budget test, not here, where two cells share the cores (per epoch,
        # the rate of the last one was 0.69 of the peak on a loaded 2-core machine)
        session = tmp_path / "clearml" / "offline" / cell["task_id"]
        steps = sorted(
            (e["iter"], e["value"])
            for e in offline_scalars(session)
            if (e["metric"], e["variant"]) == ("train", "lr")
        )
        lrs = [lr for _, lr in steps]
        assert len(lrs) >= 3 and 0 < lrs.index(max(lrs)) < len(lrs) - 1, lrs
        assert lrs[-1] < max(lrs)
    # the Pareto front: exactly the cells no other cell beats on both axes
    points = {
        c["label"]: (c["speed"]["latency"]["1"]["median_ms"], c["metrics"]["val/map"])
        for c in results
    }
    (a, pa), (b, pb) = points.items()
    dominated = {
        a: pb[0] <= pa[0] and pb[1] >= pa[1] and pb != pa,
        b: pa[0] <= pb[0] and pa[1] >= pb[1] and pa != pb,
    }
    assert {k: table[k]["Pareto"] == "yes" for k in points} == {
        k: not v for k, v in dominated.items()
    }
    assert (study / "speed_accuracy.png").stat().st_size > 10_000
    text = (study / "table.md").read_text()
    assert "| retinanet | retinanet |" in text and "| ssd | ssd |" in text
    assert "0.15 min wall-clock per cell" in text and "Pareto front" in text

    # one ClearML task per cell, plus the study's, which holds the table and links the cells
    sessions = _sessions(tmp_path)
    assert len(sessions) == 3
    (report,) = [
        s for s in sessions if json.loads((s / "task.json").read_text())["name"] == "study-compare"
    ]
    task = json.loads((report / "task.json").read_text())
    links = {k: v["value"] for k, v in task["hyperparams"]["properties"].items()}
    assert links == {f"task {c['label']}": c["task_id"] for c in results}
    plots = (report / "metrics.jsonl").read_text()
    assert "speed vs accuracy" in plots and "cells" in plots

    first = {c["label"]: c["finished_at"] for c in results}
    proc = _run_study(tmp_path, tiny_shapes, *budget[:-2])  # again, one job at a time
    assert proc.stdout.count("finished before with this config, reused") == 2
    again = json.loads((study / "results.json").read_text())["cells"]
    assert {c["label"]: c["finished_at"] for c in again} == first  # nothing retrained
    assert _table(study) == table  # nor re-measured
    assert len([p for p in (study / "cells").iterdir() if p.is_dir()]) == 2

    # an existing checkpoint, scored on the validation split instead of trained
    ckpt = results[0]["checkpoint"]
    _run_study(
        tmp_path, tiny_shapes, "study=compare", "cell=mine", f"study.checkpoints=['mine={ckpt}']"
    )
    (mine,) = json.loads((study / "results.json").read_text())["cells"]
    assert mine["label"] == "mine" and mine["model"] == "retinanet"
    assert mine["metrics"]["val/map"] == pytest.approx(results[0]["metrics"]["val/map"], abs=1e-6)


@pytest.mark.slow
def test_focal_study_two_cells(tmp_path, tiny_shapes):
    """Two cells of the focal study at one epoch: the paper's numbers beside ours, the verdict,
    the heat map."""
    _run_study(
        tmp_path,
        tiny_shapes,
        "study=focal",
        "cell=ce,g2_a25",
        "study.budget.epochs=1",
        "study.budget.minutes=null",
        "+trainer.limit_train_batches=3",
        "model.net.min_size=96",
        "model.net.max_size=96",
    )
    study = tmp_path / "logs" / "studies" / "focal"
    cells = {c["label"]: c for c in json.loads((study / "results.json").read_text())["cells"]}
    assert set(cells) == {"ce", "g2_a25"}
    assert cells["ce"]["settings"] == {
        "model.net.focal_gamma": "0.0",
        "model.net.focal_alpha": "-1.0",
    }
    assert cells["g2_a25"]["settings"] == {
        "model.net.focal_gamma": "2.0",
        "model.net.focal_alpha": "0.25",
    }
    assert all(c["epochs"] == 1 for c in cells.values())
    table = _table(study)
    assert table["ce"]["paper mAP"] == "30.2" and table["g2_a25"]["paper mAP"] == "34.0"
    assert table["g2_a25"]["mAP75"] == f"{cells['g2_a25']['metrics']['val/map_75']:.4f}"
    ours = cells["g2_a25"]["metrics"]["val/map"], cells["ce"]["metrics"]["val/map"]
    word = "beats" if ours[0] > ours[1] else "does not beat"
    line = f"- **g2_a25** {word} **ce** on mAP: {ours[0]:.4f} against {ours[1]:.4f}"
    assert line in (study / "table.md").read_text()
    assert (study / "heatmap.png").stat().st_size > 5_000
