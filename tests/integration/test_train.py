"""Training end to end on generated VOC and COCO folders, in process."""

import pytest
import torch

from lightdet.runs.train import run_training
from tests.conftest import compose_train, offline_scalars


def _newest_session(cache):
    return max((p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


@pytest.mark.slow
@pytest.mark.parametrize("data", ["shapes", "shapes_coco"])
def test_train_on_voc_and_coco_layouts_by_data_config_only(
    tmp_path, tiny_shapes, clearml_cache, data
):
    cfg = compose_train(tmp_path, f"data={data}", f"data.source.root={tiny_shapes}")
    score = run_training(cfg).best
    assert isinstance(score, float) and 0.0 <= score <= 1.0
    ckpts = tmp_path / "run" / "checkpoints"
    assert (ckpts / "last.ckpt").is_file() and list(ckpts.glob("best-epoch*.ckpt"))
    ckpt = torch.load(ckpts / "last.ckpt", weights_only=True)  # plain containers only
    hp = ckpt["hyper_parameters"]
    assert hp["class_names"] == ["circle", "square", "triangle"]
    assert hp["config"]["data"]["source"]["format"] == ("coco" if data == "shapes_coco" else "voc")
    assert hp["category_map"] == (
        {1: 1, 2: 2, 3: 3} if data == "shapes_coco" else {"circle": 1, "square": 2, "triangle": 3}
    )
    session = _newest_session(clearml_cache)
    series = {(e["metric"], e["variant"]) for e in offline_scalars(session)}
    assert ("test", "map") in series  # the test split was evaluated with the best checkpoint


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path, tiny_shapes):
    def run(name):
        cfg = compose_train(tmp_path / name, f"data.source.root={tiny_shapes}", "test=false")
        run_training(cfg)
        return torch.load(tmp_path / name / "run/checkpoints/last.ckpt", weights_only=True)[
            "state_dict"
        ]

    a, b = run("a"), run("b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = torch.load(tmp_path / "a/run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert any(
        not torch.equal(c[k], v)
        for k, v in _initial_weights(tmp_path, tiny_shapes).items()
        if k in c
    )


def _initial_weights(tmp_path, tiny_shapes):
    """The untrained weights for the same seed: training must have changed them."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    cfg = compose_train(tmp_path / "init", f"data.source.root={tiny_shapes}")
    pl.seed_everything(cfg.seed, workers=True)
    return {
        f"net.{k}": v
        for k, v in instantiate(cfg.model.net, num_classes=4, pretrained="none")
        .state_dict()
        .items()
    }


@pytest.mark.slow
def test_fast_dev_run_trains_and_validates_on_cpu(tmp_path, tiny_shapes):
    """Lightning's smoke run: one training and one validation batch through run_training()."""
    cfg = compose_train(tmp_path, f"data.source.root={tiny_shapes}", "+trainer.fast_dev_run=true")
    score = run_training(cfg).best
    # no checkpoint callback under fast_dev_run: the value comes from the validation that ran
    assert isinstance(score, float) and 0.0 <= score <= 1.0


@pytest.mark.slow
def test_resuming_from_the_last_checkpoint_loads_weights_only(tmp_path, tiny_shapes):
    """ckpt_path resumes with torch.load(weights_only=True): the whole Lightning state
    (optimizer, scheduler, loops, callbacks) must be plain data for that to work."""
    first = compose_train(tmp_path / "a", f"data.source.root={tiny_shapes}", "test=false")
    run_training(first)
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    resumed = compose_train(
        tmp_path / "b",
        f"data.source.root={tiny_shapes}",
        "test=false",
        "trainer.max_epochs=2",
        f"ckpt_path={last}",
    )
    run_training(resumed)
    state = torch.load(last, weights_only=True)  # a resumed run keeps its checkpoint folder
    assert (state["epoch"], state["global_step"]) == (1, 4)  # continued, not restarted
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 2, "batches": 0}
    ]
