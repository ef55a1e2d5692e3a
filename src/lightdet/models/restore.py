"""The detector a checkpoint was trained as, rebuilt without Lightning.

One rule for every consumer (``evaluate``, :class:`lightdet.Detector`): the architecture comes
from the checkpoint's own ``hyper_parameters.config.model.net`` (checked like a command-line
config), ``num_classes`` from its class names, the weights from its ``state_dict`` (loaded
``weights_only``). Nothing is downloaded: the builder runs with ``pretrained="none"`` and the
trained weights replace whatever it initialised.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from lightdet.data.classes import num_classes

_PREFIX = "net."  # DetectionModule keeps the detector as ``self.net``


class NotACheckpointError(ValueError):
    """A file that loads, but is not a lightdet training checkpoint."""


@dataclass(frozen=True)
class TrainedNet:
    """A rebuilt detector with what it was trained on.

    Attributes:
        net: the torchvision detection model, weights loaded, in eval mode, on the CPU.
        class_names: the K class names (label ``i`` is ``class_names[i - 1]``).
        category_map: the dataset's category id -> label map.
        config: the resolved run config stored with the checkpoint.
    """

    net: nn.Module
    class_names: list[str]
    category_map: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def restore_net(path: str | os.PathLike, class_names: list[str] | None = None) -> TrainedNet:
    """Rebuild the detector stored in a lightdet checkpoint.

    Args:
        path: a ``.ckpt`` written by training (``checkpoints/best-*.ckpt``, ``last.ckpt``).
        class_names: when given, the classes the caller's data has; they must be the
            checkpoint's, in the same order.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file holds objects other than tensors and containers.
        NotACheckpointError: not a lightdet checkpoint (no stored model config or classes).
        UnsafeConfigError: the stored config was edited to create something not allowed.
        CheckpointMismatchError: other classes than ``class_names``, or weights that do not
            fit the stored architecture.
    """
    # the guard and Hydra's instantiate only when a checkpoint is actually read
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from lightdet.guard import check_classes, check_stored_config, load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    ckpt = load_checkpoint(path)
    hp, state = _contents(path, ckpt)
    trained = list(hp["class_names"])
    if class_names is not None:
        check_classes(path, trained, class_names)
    config = hp["config"]
    check_stored_config(config, where=f"{path}: hyper_parameters.config")
    net_cfg = OmegaConf.create(config["model"]["net"])
    extra = {"pretrained": "none"} if "pretrained" in net_cfg else {}
    try:
        net = instantiate(net_cfg, num_classes=num_classes(trained), **extra)
    except (InstantiationException, TypeError, ValueError) as err:  # keys of another builder
        from lightdet.guard import CheckpointMismatchError

        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise CheckpointMismatchError(
            f"{path}: hyper_parameters.config.model.net does not build its detector: {first}"
        ) from err
    _load_weights(path, net, state)
    net.eval()
    return TrainedNet(net, trained, dict(hp.get("category_map") or {}), config)


def _contents(path: Path, ckpt) -> tuple[Mapping, Mapping[str, Tensor]]:
    """``hyper_parameters`` and the detector's part of ``state_dict``, or a clear refusal."""
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, Mapping) else None
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    net_cfg = (((hp or {}).get("config") or {}).get("model") or {}).get("net")
    missing = [
        what
        for what, ok in (
            ("hyper_parameters.config.model.net", isinstance(net_cfg, Mapping)),
            ("hyper_parameters.class_names", bool((hp or {}).get("class_names"))),
            ("state_dict with net.* weights", any(str(k).startswith(_PREFIX) for k in state or {})),
        )
        if not ok
    ]
    if missing:
        raise NotACheckpointError(
            f"{path}: not a lightdet training checkpoint (missing {', '.join(missing)}); "
            "use a checkpoint that `make train` wrote (logs/<task>/runs/<run>/checkpoints/)"
        )
    weights = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}
    return hp, weights


def _load_weights(path: Path, net: nn.Module, weights: Mapping[str, Tensor]) -> None:
    from lightdet.guard import CheckpointMismatchError
    from lightdet.guard.checkpoints import weight_differences

    # a backbone trained from ImageNet weights has frozen BatchNorm (no batch counter); rebuilt
    # without downloading, it has plain BatchNorm, which computes the same in eval mode
    problems = weight_differences(net.state_dict(), weights, optional=("num_batches_tracked",))
    if problems:
        raise CheckpointMismatchError(
            f"{path}: the weights do not fit the stored model.net config: {problems}"
        )
    net.load_state_dict(weights, strict=False)
