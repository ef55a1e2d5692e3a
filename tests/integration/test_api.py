"""The Python API end to end on a real training run: ``lightdet.train``, ``lightdet.evaluate``
and ``Detector.from_checkpoint(...).predict(...)`` against the validation loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import lightdet
from lightdet import Detector
from lightdet.evaluation.thresholds import load_threshold
from lightdet.outputs import MARKER
from lightdet.runs.build import build_datamodule, module_from_checkpoint
from lightdet.runs.compose import compose_config
from tests.conftest import CLASSES, TINY, data_overrides, offline_events, tiny_overrides

pytestmark = pytest.mark.slow


def _data_overrides(root: Path, data_root: Path) -> list[str]:
    return [*data_overrides(root), f"data.source.root={data_root}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_shapes):
    """One epoch of the tiny RetinaNet through ``lightdet.train``; every detection is kept
    (``score_thresh=0``) so that the comparisons below compare hundreds of boxes."""
    root = tmp_path_factory.mktemp("api")
    overrides = [
        *tiny_overrides(root),
        f"data.source.root={tiny_shapes}",
        "+model.net.score_thresh=0.0",
    ]
    return root, lightdet.train(overrides)


def test_train_returns_metrics_checkpoint_and_a_run_folder_like_the_cli(trained):
    root, result = trained
    assert result.metric == "val/map" and result.best == result.metrics["val/map"]
    assert {"val/map_50", "train/loss", "test/map"} <= set(result.metrics)
    run = Path(result.output_dir)
    assert run.parent == root / "logs" / "retinanet" / "runs"  # the CLI's hydra.run.dir
    assert (run / MARKER).is_file()
    best = Path(result.best_checkpoint)
    assert best.parent == run / "checkpoints" and best.name.startswith("best-epoch")
    last = torch.load(best.with_name("last.ckpt"), weights_only=True)  # the training state
    (state,) = [v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert float(state["best_model_score"]) == result.best
    # the best checkpoint: weights only, a third of last.ckpt (no optimizer state)
    assert "optimizer_states" not in torch.load(best, weights_only=True, mmap=True)
    assert best.stat().st_size < 0.45 * best.with_name("last.ckpt").stat().st_size
    # the registered model's fixed name: the same file (a hard link), no second copy on disk
    assert best.with_name("model_best.ckpt").samefile(best)
    assert sorted(p.name for p in best.parent.iterdir()) == sorted(
        [
            MARKER,
            best.name,
            f"{best.name}.eval.json",
            "last.ckpt",
            "last.ckpt.finished",  # the run ended: RESUME=auto passes it over
            "model_best.ckpt",
        ]
    )
    # results/: the best epoch's report scores the detections val/map scored. torchmetrics
    # passes COCO's thresholds through float32, which can move its value in the 4th decimal
    report = json.loads((run / "results" / "metrics.json").read_text())
    assert report["coco"]["map"] == pytest.approx(result.best, abs=1e-3)
    assert result.best_epoch == 0 and result.best_metrics["val/map"] == result.best
    kept = load_threshold(best)
    assert kept["threshold"] == report["score_threshold"]["threshold"]


def test_evaluate_scores_the_checkpoint_as_training_did(trained, tiny_shapes, clearml_cache):
    root, result = trained
    overrides = [
        *_data_overrides(root, tiny_shapes),
        "+trainer.limit_val_batches=2",
        "+trainer.enable_progress_bar=false",
    ]
    metrics = lightdet.evaluate(result.best_checkpoint, overrides, track=True)
    assert metrics["val/map"] == result.metrics["val/map"]
    assert metrics["val/map_50"] == result.metrics["val/map_50"]
    # the report in the evaluation's run folder: the same detections training's report saw
    (run,) = [p for p in (root / "logs" / "evaluate" / "runs").iterdir() if p.is_dir()]
    report = json.loads((run / "metrics.json").read_text())
    trained_report = json.loads((Path(result.results_dir) / "metrics.json").read_text())
    assert report["coco"] == trained_report["coco"]
    assert report["per_class"].keys() == set(CLASSES)
    detections = json.loads((run / "detections.json").read_text())
    assert len(detections) > 100 and {d["category_id"] for d in detections} <= {1, 2, 3}
    assert load_threshold(result.best_checkpoint)["evaluated_on"].startswith("val split")
    # and the same report in the evaluation's ClearML task, as ClearML's own plots
    session = max(
        (p for p in clearml_cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    plots = {(e["metric"], e["variant"]) for e in offline_events(session, "plot")}
    assert ("val evaluation", "per class") in plots
    assert {("val F1 against confidence", n) for n in ("all classes", *CLASSES)} <= plots
    assert any(m == "val confusion matrix at the F1 threshold" for m, _ in plots)
    table = next(e for e in offline_events(session, "plot") if e["metric"] == "val evaluation")
    assert "circle" in table["plot_str"] and "VOC AP" in table["plot_str"]


def test_evaluate_from_python_is_quiet_and_leaves_nothing_unless_asked(
    trained, clearml_cache, capfd
):
    """Issue 34: lightdet.evaluate() in a user's script made a ClearML task and a run folder
    and printed Lightning's banner; it now returns the metrics and nothing else."""
    root, result = trained
    from lightdet.evaluation.thresholds import sidecar

    kept = sidecar(result.best_checkpoint).stat().st_mtime_ns
    sessions = set(clearml_cache.iterdir()) if clearml_cache.exists() else set()
    runs = root / "logs" / "evaluate" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    capfd.readouterr()
    metrics = lightdet.evaluate(
        result.best_checkpoint, [f"paths.root_dir={root}", "+trainer.limit_val_batches=2"]
    )
    shown = capfd.readouterr()
    assert metrics["val/map"] == result.metrics["val/map"]
    assert (set(runs.iterdir()) if runs.exists() else set()) == before
    assert (set(clearml_cache.iterdir()) if clearml_cache.exists() else set()) == sessions
    assert sidecar(result.best_checkpoint).stat().st_mtime_ns == kept
    banner = shown.out + shown.err
    assert "GPU available" not in banner and "Validation DataLoader" not in banner
    assert "Average Precision" not in banner  # the report is not printed either


def test_evaluate_takes_the_checkpoints_own_data_by_default(trained, caplog):
    """No data override at all: the data the checkpoint was trained on (tiny shapes in another
    folder, other sizes), not evaluate.yaml's default data; the log says which."""
    root, result = trained
    caplog.set_level("INFO", logger="lightdet.runs.preflight")
    metrics = lightdet.evaluate(
        result.best_checkpoint, [f"paths.root_dir={root}", "+trainer.limit_val_batches=2"]
    )
    assert metrics["val/map"] == result.metrics["val/map"]
    assert "data: the checkpoint's (lightdet.data.sources.ShapesSource)" in caplog.text
    with pytest.raises(
        ValueError,
        match=r"split=test: the data \(ShapesSource\) has no test "
        r"split; use split=val, or set data.source.num_test=<images>",
    ):
        lightdet.evaluate(
            result.best_checkpoint,
            [f"paths.root_dir={root}", "++data.source.num_test=0"],
            split="test",
        )


def test_predict_returns_the_validation_loops_detections(trained, tiny_shapes):
    """The same image gives the same boxes, scores and labels through Detector.predict as
    through Lightning's validation loop (same precision, same conversion, same weights)."""
    root, result = trained
    cfg = compose_config(
        "evaluate", [f"ckpt_path={result.best_checkpoint}", *_data_overrides(root, tiny_shapes)]
    )
    datamodule = build_datamodule(cfg)
    datamodule.setup("validate")
    paths = {r.image_id: str(r.image_path) for r in datamodule.datasets["val"].records}
    loop: dict[str, dict] = {}

    class Record(pl.Callback):
        def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, *args):
            for target, pred in zip(batch[1], outputs):
                loop[paths[int(target["image_id"])]] = pred

    module = module_from_checkpoint(result.best_checkpoint, list(CLASSES))
    from lightdet.lightning.precision import trainer_precision

    precision = trainer_precision(cfg.trainer)  # auto: bf16-mixed where the CPU has it
    trainer = pl.Trainer(
        accelerator="cpu",
        precision=precision,
        logger=False,
        callbacks=[Record()],
        enable_progress_bar=False,
    )
    trainer.validate(module, datamodule=datamodule)
    assert len(loop) == TINY["num_val"]

    detector = Detector.from_checkpoint(result.best_checkpoint, device="cpu")
    assert detector.precision == precision and cfg.trainer.precision == "auto"
    found = detector.predict(list(loop), score_thresh=0.0, batch_size=4)
    assert sum(len(f) for f in found) > 100  # not a comparison of empty lists
    for image in found:
        expected = loop[image.source]
        assert torch.equal(image.boxes, expected["boxes"].float())
        assert torch.equal(image.scores, expected["scores"].float())
        assert torch.equal(image.labels, expected["labels"])
        assert image.names == [CLASSES[v - 1] for v in expected["labels"].tolist()]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_verifies_the_file_on_the_validation_split(trained, tiny_shapes, fmt, capsys):
    root, result = trained
    from lightdet.deploy.export import read_metadata
    from lightdet.runs.export import run_export

    cfg = compose_config(
        "export",
        [
            f"ckpt_path={result.best_checkpoint}",
            f"format={fmt}",
            *_data_overrides(root, tiny_shapes),
            f"output_dir={root}/export_{fmt}",
        ],
    )
    report = run_export(cfg)
    assert report["passed"] and report["images"] == TINY["num_val"] + 1  # and a blank image
    assert report["images_matching"] == report["images"]  # trained: detection by detection
    assert report["detections"] > 100 and report["max_score_error"] <= 1e-4
    coco = report["coco"]["map"]
    assert coco["exported"] == pytest.approx(coco["pytorch"], abs=1e-3)
    meta = read_metadata(report["file"])
    assert json.loads(meta["class_names"]) == list(CLASSES)
    assert float(meta["score_threshold"]) == pytest.approx(
        load_threshold(result.best_checkpoint)["threshold"], rel=1e-5
    )
    assert "PASSED" in capsys.readouterr().out


def test_predict_command_on_the_trained_checkpoint(trained, tiny_shapes):
    """``make predict`` over the validation images: the JSON holds what Detector.predict
    returns at the same threshold, one drawn image per input."""
    root, result = trained
    from lightdet.runs.predict import run_prediction

    images = tiny_shapes / "VOC" / "JPEGImages"
    cfg = compose_config(
        "predict",
        [
            f"paths.root_dir={root}",
            f"ckpt_path={result.best_checkpoint}",
            f"input={images}",
            "score_thresh=0.0",
            f"output_dir={root}/predict",
        ],
    )
    summary = run_prediction(cfg)
    written = json.loads((root / "predict" / "predictions.json").read_text())
    expected = Detector.from_checkpoint(result.best_checkpoint).predict(images, score_thresh=0.0)
    assert len(written["images"]) == len(expected) == summary["images"] > 20
    for entry, found in zip(written["images"], expected):
        assert entry["file"] == found.source and len(entry["detections"]) == len(found)
        assert [d["score"] for d in entry["detections"]] == [
            round(s, 4) for s in found.scores.tolist()
        ]
    assert summary["detections"] == sum(len(f) for f in expected) > 100
    assert len(list((root / "predict" / "images").glob("*.jpg"))) == len(expected)


def test_the_api_and_make_predict_keep_the_same_detections_by_default(trained, tiny_shapes):
    """Issue 34: Detector.predict kept score >= 0.25 while make predict kept the checkpoint's
    F1-optimal threshold (0 against 5 detections on the same images). Both now default to the
    threshold the checkpoint's evaluation kept beside it; the image size is width and height
    in both."""
    root, result = trained
    from lightdet.runs.predict import run_prediction

    kept = load_threshold(result.best_checkpoint)["threshold"]
    detector = Detector.from_checkpoint(result.best_checkpoint)
    assert detector.score_thresh == kept and detector.threshold_source.startswith("F1-optimal")
    images = tiny_shapes / "VOC" / "JPEGImages"
    found = detector.predict(images)
    cfg = compose_config(
        "predict",
        [
            f"paths.root_dir={root}",
            f"ckpt_path={result.best_checkpoint}",
            f"input={images}",
            f"output_dir={root}/predict_default",
        ],
    )
    summary = run_prediction(cfg)
    written = json.loads((root / "predict_default" / "predictions.json").read_text())
    assert written["score_threshold"] == pytest.approx(kept)
    assert [len(e["detections"]) for e in written["images"]] == [len(f) for f in found]
    assert summary["detections"] == sum(len(f) for f in found)
    assert [(e["width"], e["height"]) for e in written["images"]] == [
        (f.width, f.height) for f in found
    ]


def _int8_export(trained, tiny_shapes, name: str, max_map_drop: float) -> tuple[dict, Path]:
    """``make export PRECISION=int8`` on the trained checkpoint, calibrated on 8 images."""
    from lightdet.runs.export import run_export

    root, result = trained
    out = root / name
    cfg = compose_config(
        "export",
        [
            f"ckpt_path={result.best_checkpoint}",
            "precision=int8",
            "quantize.calibration_images=8",
            f"quantize.max_map_drop={max_map_drop}",
            *_data_overrides(root, tiny_shapes),
            f"output_dir={out}",
        ],
    )
    return run_export(cfg), out


def test_int8_export_is_quantised_gated_and_says_so(trained, tiny_shapes, capsys):
    """The float file as before, then its INT8 twin: calibrated on 8 training images, the
    network's nodes quantised, the val mAP change measured against PyTorch and written into
    the report and the file's metadata."""
    import onnx

    from lightdet.deploy.export import read_metadata
    from lightdet.deploy.quantize import NETWORK_OPS

    report, out = _int8_export(trained, tiny_shapes, "export_int8", 1.0)
    assert report["passed"]  # the float file passed its own check first
    section = report["int8"]
    path = Path(section["file"])
    assert path == Path(report["file"]).with_name(Path(report["file"]).stem + ".int8.onnx")
    assert section["calibration"] == {"split": "train", "images": 8, "of": TINY["num_train"]}
    float_nodes = onnx.load(report["file"]).graph.node
    assert section["quantisation"]["quantised_nodes"] == sum(
        n.op_type in NETWORK_OPS for n in float_nodes
    )
    gate = section["gate"]
    pytorch_map = report["coco"]["map"]["pytorch"]
    assert gate["pytorch"]["map"] == pytest.approx(pytorch_map, abs=1e-9)  # the same reference
    assert gate["change"]["map"] == pytest.approx(gate["file"]["map"] - pytorch_map, abs=1e-9)
    assert gate["passed"] and section["images"] == report["images"]
    assert section["size_mb"] < 0.45 * Path(report["file"]).stat().st_size / 2**20
    meta = read_metadata(path)
    assert meta["precision"] == "int8" and meta["map_gate_passed"] == "true"
    assert json.loads(meta["map_gate"]) == gate
    assert json.loads(meta["class_names"]) == list(CLASSES)  # the float file's keys kept
    saved = json.loads((out / "export_report.json").read_text())
    assert saved["int8"]["gate"] == gate
    printed = capsys.readouterr().out
    assert f"calibrating on 8 of the {TINY['num_train']} images of the train split" in printed
    assert "PASSED the gate" in printed


def test_int8_export_past_the_gate_fails_and_keeps_the_figures(trained, tiny_shapes, monkeypatch):
    """A file that loses more mAP than allowed: the command fails naming the figures; the file
    stays for inspection, marked failed in its metadata and the report."""
    import lightdet.runs.export_int8 as export_int8
    from lightdet.deploy.export import read_metadata
    from lightdet.deploy.gate import map_gate

    # an allowance below zero: whatever the tiny model's change, it is past it
    monkeypatch.setattr(export_int8, "map_gate", lambda coco, _: map_gate(coco, -1.0))
    with pytest.raises(SystemExit) as failed:
        _int8_export(trained, tiny_shapes, "export_int8_failed", 0.01)
    message = str(failed.value)
    report = json.loads((trained[0] / "export_int8_failed" / "export_report.json").read_text())
    gate = report["int8"]["gate"]
    assert not gate["passed"] and gate["max_map_drop"] == -1.0
    assert "failed the mAP gate" in message
    assert f"{gate['pytorch']['map']:.4f} -> {gate['file']['map']:.4f}" in message
    assert read_metadata(report["int8"]["file"])["map_gate_passed"] == "false"


def test_measure_runtimes_times_the_checkpoint_in_each_runtime(trained, tiny_shapes, tmp_path):
    """``lightdet.measure_runtimes``: PyTorch at batch 1 and 2, the float ONNX file at batch
    1, with the threads asked for, the file kept and scored against PyTorch on val."""
    _, result = trained
    images = sorted((tiny_shapes / "VOC" / "JPEGImages").glob("*.jpg"))[:2]
    found = lightdet.measure_runtimes(
        result.best_checkpoint,
        [str(p) for p in images],
        ["pytorch", "onnx-fp32"],
        threads=1,
        batch_sizes=(1, 2),
        repeats=3,
        blocks=1,
        folder=tmp_path,
    )
    assert list(found) == ["pytorch", "onnx-fp32"]
    torch_speed, file_speed = found["pytorch"], found["onnx-fp32"]
    assert set(torch_speed["latency"]) == {"1", "2"} and set(file_speed["latency"]) == {"1"}
    assert torch_speed["threads"] == file_speed["threads"] == 1
    assert file_speed["runtime"] == "onnx-fp32" and file_speed["precision"] == "fp32"
    assert Path(file_speed["file"]).is_file() and Path(file_speed["file"]).parent.parent == tmp_path
    timing = file_speed["latency"]["1"]
    assert timing["repeats"] == 3 and timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"]
    coco = file_speed["coco"]
    assert coco["file"]["map"] == pytest.approx(coco["pytorch"]["map"], abs=1e-3)  # float32
    with pytest.raises(ValueError, match="expected one or more of pytorch, onnx-fp32"):
        lightdet.measure_runtimes(result.best_checkpoint, [str(images[0])], ["tensorrt"])
