"""`make train MODEL=<each>`: every model config trains and validates on shapes data on CPU."""

from pathlib import Path

import pytest

from lightdet.cli import CONFIG_DIR
from lightdet.runs.train import run_training
from tests.conftest import compose_train

MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_trains_on_shapes(tmp_path, tiny_shapes, model):
    cfg = compose_train(
        tmp_path,
        f"model={model}",
        f"data.source.root={tiny_shapes}",
        "test=false",
        "callbacks.clearml_reports=null",
        resize=False,
    )
    score = run_training(cfg).best
    assert score is not None and 0.0 <= score <= 1.0
    assert (tmp_path / "run/checkpoints/last.ckpt").is_file()
