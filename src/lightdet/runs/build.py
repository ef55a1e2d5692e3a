"""Building what a run needs from its config: one rule each, shared by every command."""

from __future__ import annotations

import logging
import os

from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from lightdet.lightning.datamodule import DetectionDataModule
from lightdet.lightning.module import DetectionModule
from lightdet.models import pretrained as auto_weights
from lightdet.models.restore import restore_net
from lightdet.models.weights_file import is_weights_file, load_weights_file

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> DetectionDataModule:
    """The datamodule with its augmentation pipelines, data prepared (generated if synthetic)."""
    datamodule = instantiate(
        cfg.data,
        train_transform=instantiate(cfg.augmentation.train),
        eval_transform=instantiate(cfg.augmentation.eval),
    )
    datamodule.prepare_data()
    return datamodule


def build_module(cfg: DictConfig, datamodule: DetectionDataModule) -> DetectionModule:
    """The Lightning system to train; ``num_classes`` comes from the data, never from the model
    config."""
    return DetectionModule(
        net=build_net(cfg.model.net, datamodule.num_classes, synthetic=datamodule.synthetic),
        optimizer=instantiate(cfg.model.optimizer),
        scheduler=instantiate(cfg.model.scheduler) if cfg.model.get("scheduler") else None,
        class_names=datamodule.class_names,
        category_map=datamodule.category_map,
        config=OmegaConf.to_container(cfg, resolve=True),
        backbone_lr_mult=float(OmegaConf.select(cfg, "optimization.backbone_lr_mult", default=1.0)),
        **_nonfinite_args(cfg),
    )


def build_net(net_cfg: DictConfig, num_classes: int, *, synthetic: bool = False):
    """The detector to train: ``model.net`` built, then, when ``pretrained`` names a file, built
    from random weights and given what fits of that file (see
    :mod:`lightdet.models.weights_file`). ``pretrained: auto`` is resolved first
    (:mod:`lightdet.models.pretrained`; ``synthetic``: the built-in shapes, random weights)."""
    pretrained = net_cfg.get("pretrained")
    choice = pretrained_choice(net_cfg, synthetic=synthetic)
    if choice is not None:
        if choice.warning:
            log.warning(choice.warning)
        else:
            log.info("model.net.pretrained=auto: %s", choice.reason)
        return instantiate(net_cfg, num_classes=num_classes, pretrained=choice.pretrained)
    if not is_weights_file(pretrained):
        return instantiate(net_cfg, num_classes=num_classes)
    net = instantiate(net_cfg, num_classes=num_classes, pretrained="none")
    load_weights_file(net, pretrained)
    return net


def pretrained_choice(net_cfg: DictConfig, *, synthetic: bool) -> auto_weights.Choice | None:
    """What ``model.net.pretrained: auto`` becomes on this machine (None: not ``auto``)."""
    if net_cfg.get("pretrained") != auto_weights.AUTO:
        return None
    settings = OmegaConf.to_container(net_cfg, resolve=True)
    settings = {k: v for k, v in settings.items() if not k.startswith("_")}
    return auto_weights.resolve(get_method(net_cfg._target_), settings, synthetic=synthetic)


def module_from_checkpoint(
    path: str | os.PathLike, class_names: list[str] | None = None
) -> DetectionModule:
    """The Lightning system to evaluate: the detector a checkpoint was trained as (see
    :func:`lightdet.models.restore.restore_net`), without optimizer."""
    trained = restore_net(path, class_names)
    return DetectionModule(
        net=trained.net,
        class_names=trained.class_names,
        category_map=trained.category_map,
        config=trained.config,
    )


def _nonfinite_args(cfg: DictConfig) -> dict:
    policy = cfg.get("nonfinite_loss") or {}
    return {
        k: v
        for k, v in (
            ("nonfinite_loss", policy.get("action")),
            ("max_nonfinite_steps", policy.get("max_steps")),
        )
        if v is not None
    }
