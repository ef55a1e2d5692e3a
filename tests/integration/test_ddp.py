"""Two real DDP processes on the CPU (gloo): one task, one set of checkpoints, exact mAP."""

import json

import pytest
from hydra import compose, initialize_config_dir

from lightdet.cli import CONFIG_DIR
from lightdet.data.shapes import ShapesSpec, ensure_shapes
from lightdet.runs.evaluate import run_evaluation
from tests.conftest import TINY, offline_scalars, run_train_cli


@pytest.mark.slow
def test_two_process_ddp_run_matches_a_single_process_evaluation(tmp_path):
    # 7 validation images: a padding DistributedSampler would score one of them twice
    data = ensure_shapes(tmp_path / "shapes7", ShapesSpec(**{**TINY, "num_val": 7}))
    _, session = run_train_cli(
        tmp_path,
        data,
        "trainer=ddp_cpu",
        "++data.source.num_val=7",
        "trainer.limit_val_batches=1.0",
        "trainer.max_epochs=1",
        "+model.net.score_thresh=0.001",  # untrained: keep low scores
    )
    runs = [p for p in (tmp_path / "logs" / "retinanet" / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1  # the second rank did not make its own Hydra run folder
    ckpts = sorted(p.name for p in (runs[0] / "checkpoints").iterdir() if p.suffix == ".ckpt")
    # written once, by rank 0 (model_best.ckpt: the registered name of the best, a hard link)
    assert ckpts == ["best-epoch000.ckpt", "last.ckpt", "model_best.ckpt"]

    logged = {e["variant"]: e["value"] for e in offline_scalars(session) if e["metric"] == "val"}
    assert logged["map_50"] > 0  # a nonzero score, so the comparison below is not 0 == 0

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="evaluate",
            overrides=[
                f"paths.root_dir={tmp_path}",
                "paths.output_dir=${paths.root_dir}/eval",
                f"data.source.root={data}",
                *(f"++data.source.{k}={v}" for k, v in TINY.items()),
                "++data.source.num_val=7",
                "data.num_workers=0",
                "data.batch_size=4",
                "trainer.precision=32-true",
                "+trainer.enable_progress_bar=false",
                f"ckpt_path={runs[0]}/checkpoints/best-epoch000.ckpt",
                "logger.clearml.offline=true",
            ],
        )
    single = run_evaluation(cfg)
    for name in ("map", "map_50", "map_75", "mar_100"):
        assert single[f"val/{name}"] == pytest.approx(logged[name], abs=1e-6), name
    # rank 0's results/ report holds both processes' images and detections: the same as the
    # single-process evaluation's report (one process scored 4 images, the other 3)
    ddp = json.loads((runs[0] / "results" / "ground_truth.json").read_text())
    alone = json.loads((tmp_path / "eval" / "ground_truth.json").read_text())
    assert sorted(i["id"] for i in ddp["images"]) == sorted(i["id"] for i in alone["images"])
    assert len(ddp["images"]) == 7 and ddp["annotations"] == alone["annotations"]
    ddp_coco = json.loads((runs[0] / "results" / "metrics.json").read_text())["coco"]
    alone_coco = json.loads((tmp_path / "eval" / "metrics.json").read_text())["coco"]
    assert ddp_coco == pytest.approx(alone_coco, abs=1e-6)
