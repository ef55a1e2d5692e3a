"""Every config file composes, and everything in it instantiates."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from lightdet.cli import CONFIG_DIR
from lightdet.guard import check_targets
from lightdet.lightning.datamodule import DetectionDataModule
from lightdet.runs.train import instantiate_callback
from tests.conftest import compose_train

GROUP_OPTIONS = [
    (group.name, path.stem)
    for group in sorted(Path(CONFIG_DIR).iterdir())
    # hpo/ belongs to hpo.yaml, composed below; study/ to study.yaml (tests/unit/studies)
    if group.is_dir() and group.name not in ("hpo", "study")
    for path in sorted(group.glob("*.yaml"))
]


def test_the_groups_the_readme_promises_exist():
    groups = {g for g, _ in GROUP_OPTIONS}
    assert {
        "model",
        "data",
        "augmentation",
        "optimizer",
        "scheduler",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "experiment",
    } <= groups


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_composes_and_instantiates(tmp_path, group, option):
    # pretrained=none: no downloads here. Without CUDA, a GPU trainer is built on the CPU.
    overrides = [f"{group}={option}", "model.net.pretrained=none"]
    if not torch.cuda.is_available():
        overrides += [
            "trainer.accelerator=cpu",
            "trainer.precision=32-true",
            "trainer.devices=1",
            "++trainer.num_nodes=1",
        ]
    cfg = compose_train(tmp_path, *overrides, tiny_data=False, resize=False)
    check_targets(cfg)  # every shipped option passes the instantiate allow-list
    datamodule = instantiate(
        cfg.data,
        train_transform=instantiate(cfg.augmentation.train),
        eval_transform=instantiate(cfg.augmentation.eval),
    )
    assert isinstance(datamodule, DetectionDataModule)
    net = instantiate(cfg.model.net, num_classes=4)
    assert isinstance(net, torch.nn.Module)
    optimizer = instantiate(cfg.model.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    instantiate(cfg.model.scheduler)(optimizer, total_steps=10)
    callbacks = [instantiate_callback(c) for c in cfg.callbacks.values()]
    callbacks = [c for c in callbacks if c is not None]
    from lightdet.lightning.precision import trainer_precision

    precision = trainer_precision(cfg.trainer)  # auto, resolved as training resolves it
    instantiate(cfg.trainer, precision=precision, callbacks=callbacks, logger=False)
    assert cfg.logger.clearml.project


@pytest.mark.parametrize("name", ["evaluate", "hpo"])
def test_the_other_entry_points_compose(tmp_path, name):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name=name,
            overrides=[f"paths.root_dir={tmp_path}", "ckpt_path=x.ckpt"]
            if name == "evaluate"
            else [f"paths.root_dir={tmp_path}"],
        )
    assert cfg.logger.clearml.project == "lightdet"
    if name == "hpo":
        for option in sorted((Path(CONFIG_DIR) / "hpo").glob("*.yaml")):
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                hpo = compose(
                    config_name="hpo",
                    overrides=[f"paths.root_dir={tmp_path}", f"hpo={option.stem}"],
                )
            assert hpo.hpo.objective == "val/map" and hpo.hpo.search_space
