"""The real entry point, run as users run it, with its offline ClearML session read back."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lightdet.data.voc import read_voc
from tests.conftest import offline_events, offline_scalars, run_train_cli


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_shapes):
    """One plain cross-entropy run (focal gamma 0, no alpha) through the real entry point: its
    folder, its process and its offline session, read by both tests below."""
    tmp_path = tmp_path_factory.mktemp("cli_clearml")
    proc, session = run_train_cli(
        tmp_path, tiny_shapes, "model.net.focal_gamma=0", "model.net.focal_alpha=-1"
    )
    return tmp_path, proc, session


@pytest.mark.slow
def test_plain_cross_entropy_run_is_recorded_offline(recorded):
    tmp_path, proc, session = recorded
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

    # the run ends with its summary, and its results/ folder holds the pictures it names
    tail = proc.stdout.strip().splitlines()[-10:]
    start = max(i for i, line in enumerate(tail[:-1]) if set(line) == {"-"})
    summary = tail[start:]
    assert set(summary[-1]) == {"-"} and summary[1].startswith("training finished in ")
    assert "best val/map = " in summary[1]
    lines = {line.split()[0]: line for line in summary[2:-1] if line.strip()}
    (run,) = [p for p in (tmp_path / "logs" / "retinanet" / "runs").iterdir() if p.is_dir()]
    assert lines["checkpoint"].split()[1].startswith(str(run / "checkpoints" / "best-epoch"))
    assert f"{run / 'results'}/ (" in lines["pictures"]
    last = (run / "checkpoints" / "last.ckpt").stat().st_size
    assert f"in the run folder (last.ckpt {last / 1e6:.1f} MB: for resuming)" in lines["disk"]
    assert "outside it (the ClearML offline session); make clean removes both" in lines["disk"]
    pictures = {
        "curves.png",
        "pr_curves.png",
        "f1_curve.png",
        "confusion_matrix.png",
        "confusion_matrix_normalized.png",
        "predictions.png",
        "errors.png",
        "missed_sizes.png",
    }
    assert pictures <= {p.name for p in (run / "results").iterdir()}
    # why the mAP is what it is: TIDE's breakdown of the best validation
    errors = json.loads((run / "results" / "errors.json").read_text())
    assert set(errors["dap50"]) == {"Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FP", "FN"}
    assert errors["split"] == "val" and errors["costs_most"] in errors["dap50"]
    if errors["worst_images"]:  # a barely trained model misses boxes: their gallery
        assert (run / "results" / "worst_images.png").exists()
    assert all(name in lines["pictures"] for name in pictures)
    assert f"offline session {session}.zip" in lines["ClearML"]
    assert lines["next"] == f"next        make eval CKPT={lines['checkpoint'].split()[1]}"
    epochs = (run / "results" / "results.csv").read_text().splitlines()
    assert epochs[0].startswith("epoch,") and [r.split(",")[0] for r in epochs[1:]] == ["0", "1"]


@pytest.mark.slow
def test_session_holds_what_a_detection_engineer_looks_at(recorded, tiny_shapes):
    tmp_path, _, session = recorded
    task = json.loads((session / "task.json").read_text())
    scalars = offline_scalars(session)
    series = {(e["metric"], e["variant"]) for e in scalars}
    assert {("train", "device/samples_per_sec"), ("epoch", "epoch"), ("train", "lr")} <= series
    val_iters = {e["iter"] for e in scalars if (e["metric"], e["variant"]) == ("val", "map")}
    assert len(val_iters) == 2

    plots = offline_events(session, "plot")
    per_validation = {}
    for e in plots:
        per_validation.setdefault((e["metric"], e["variant"]), set()).add(e["iter"])
    assert per_validation[("val per-class AP", "AP")] == val_iters
    assert per_validation[("val confusion matrix @IoU0.5", "counts")] == val_iters
    assert per_validation[("val errors (TIDE)", "dAP")] == val_iters
    pr = {v for (m, v) in per_validation if m == "val PR curve @IoU0.5"}
    assert pr and pr <= {"circle", "square", "triangle"}
    assert ("dataset", "images and boxes") in per_validation and (
        "dataset",
        "data checks",
    ) in per_validation
    assert ("dataset box size", "train") in per_validation

    images = offline_events(session, "training_debug_image")
    assert {e["iter"] for e in images if e["metric"] == "val predictions"} == val_iters
    assert any(e["metric"] == "train samples" for e in images)
    drawn = _image_file(session, next(e for e in images if e["metric"] == "val predictions"))
    assert (
        _left_edges_green(np.asarray(Image.open(drawn).convert("RGB")).astype(int), tiny_shapes)
        > 0.8
    )

    models = {m["init"]["name"]: m for m in task["offline_output_models"]}
    assert set(models) == {"retinanet best"}  # and no auto-captured torch.save
    best = models["retinanet best"]
    assert best["init"]["label_enumeration"] == {
        "background": 0,
        "circle": 1,
        "square": 2,
        "triangle": 3,
    }
    weights = torch.load(best["weights"]["weights_filename"], weights_only=True)
    assert weights["hyper_parameters"]["class_names"] == ["circle", "square", "triangle"]
    assert "net.head.classification_head.cls_logits.weight" in weights["state_dict"]
    assert "optimizer_states" not in weights  # the best checkpoint itself: weights only
    # one file, under one name, whichever epoch was best: the offline session keeps one copy
    assert [p.name for p in (session / "models").iterdir()] == ["model_best.ckpt"]
    # ... and that one is the run's own file, hard-linked (the SDK copied it: twice the disk)
    stored = os.stat(session / "models" / "model_best.ckpt")
    (registered,) = (tmp_path / "logs").rglob("model_best.ckpt")
    if os.stat(registered).st_dev == stored.st_dev:  # one file system: links are possible
        assert stored.st_ino == os.stat(registered).st_ino
    assert "val/map" in best["init"]["config_dict"]["metrics"]
    # the registry alone answers which model is best and at which threshold: the model's own
    # table and values (model events, replayed into the model on import), and its design
    card = best["init"]["config_dict"]["evaluation"]  # the first registration's
    assert card["class_names"] == ["circle", "square", "triangle"] and card["split"] == "val"
    assert card["input_min_size"] > 0 and 0 <= card["score_threshold"] <= 1
    mine = [e for e in offline_events(session, "plot") + scalars if e["task"] == best["id"]]
    assert mine and all(e.get("model_event") for e in mine)
    tables = [e for e in mine if (e["metric"], e["variant"]) == ("evaluation", "model card")]
    last = json.loads(max(tables, key=lambda e: e["iter"])["plot_str"])["data"][0]
    rows = dict(zip(*last["cells"]["values"]))
    best_map = max(e["value"] for e in scalars if (e["metric"], e["variant"]) == ("val", "map"))
    assert float(rows["map"]) == pytest.approx(best_map, abs=1e-5)
    assert rows["class_names"] == "circle, square, triangle"
    values = {e["variant"]: e["value"] for e in mine if e["metric"] == "Summary"}
    assert set(values) == {"map", "map_50", "map_75", "voc_map", "score_threshold", "f1"}
    assert values["map"] == pytest.approx(best_map, abs=1e-6)


def _image_file(session: Path, event: dict) -> Path:
    """The file an offline image event points at (stored under the session folder)."""
    name = Path(event["url"]).name
    (found,) = [p for p in session.rglob(name) if p.is_file()]
    return found


def _left_edges_green(tiled: np.ndarray, data_root: Path) -> float:
    """Fraction of points on the left edge of every ground-truth box of the first validation batch
    that are green in the tiled debug image (4 images, each upscaled to 320 px, 4 px apart)."""
    records = read_voc(data_root / "VOC", "val", ("circle", "square", "triangle"))[:4]
    scale, hits, total = 320 / 96, 0, 0
    for k, record in enumerate(records):
        for x1, y1, _, y2 in record.boxes.tolist():
            x = k * (320 + 4) + round(x1 * scale)
            for y in range(round(y1 * scale) + 4, round(y2 * scale) - 4, 3):
                r, g, b = tiled[y, max(x - 1, 0) : x + 3].T  # the 2 px line, JPEG-blurred
                total += 1
                hits += bool(((g > 150) & (g - np.maximum(r, b) > 60)).any())
    assert total > 0
    return hits / total
