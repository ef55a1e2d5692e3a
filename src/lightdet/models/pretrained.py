"""``model.net.pretrained: auto``: the best weights to start from, chosen before the build.

On a user's own data a detector from random weights is not usable after minutes of training
(the slim RetinaNet, 4 minutes on 130 photos: val mAP 0.04), and every tool users know starts
from COCO weights. ``auto`` takes, in order: COCO weights for the whole detector where
torchvision has them for this architecture (SSD300-VGG16, SSDlite, the ResNet-50 RetinaNet and
Faster R-CNN recipes), else ImageNet weights for the backbone; each from torch's cache
(``$TORCH_HOME/hub/checkpoints``) or, where download.pytorch.org answers, downloaded. Where
neither works, random weights, with one warning that names the files to fetch and the
``model.net.pretrained=<file>`` override. The built-in shapes data keeps random weights: it is
made to be learnt from scratch, and its figures in the README are from scratch.

``LIGHTDET_WEIGHTS_OFFLINE=1`` skips the download probe (air-gapped machines; the tests).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torchvision.models import WeightsEnum
from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights
from torchvision.models.detection import ssd as tv_ssd
from torchvision.models.detection import ssdlite as tv_ssdlite

from lightdet.models import faster_rcnn, fcos, retinanet, ssd

log = logging.getLogger(__name__)

AUTO = "auto"
DOWNLOAD_HOST = ("download.pytorch.org", 443)
OFFLINE_ENV = "LIGHTDET_WEIGHTS_OFFLINE"


@dataclass(frozen=True)
class Choice:
    """What ``auto`` became: ``pretrained`` for the builder, and a line saying why."""

    pretrained: str
    reason: str
    warning: str | None = None


def _settings(builder, net_cfg: dict) -> dict:
    """The builder's arguments: its signature's defaults under the config's values."""
    params = inspect.signature(builder).parameters
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **net_cfg}


def _backbone(name: str) -> WeightsEnum | None:
    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except ValueError:
        return None


def coco_weights(builder, args: dict) -> WeightsEnum | None:
    """The COCO weights of the whole detector, where torchvision has them for this config."""
    if builder is retinanet.build_retinanet:
        stock = args["fpn_channels"] == 256 and args["head_norm"] in (None, "none")
        return (
            RetinaNet_ResNet50_FPN_Weights.COCO_V1
            if args["backbone"] == "resnet50" and stock
            else None
        )
    if builder is faster_rcnn.build_faster_rcnn:
        stock = args["fpn_channels"] == 256 and args["strides"] is None
        recipe = faster_rcnn.COCO_RECIPES.get((args["backbone"], args["version"]))
        return recipe[1] if recipe and stock else None
    if builder is ssd.build_ssd300_vgg16:
        return tv_ssd.SSD300_VGG16_Weights.COCO_V1
    if builder is ssd.build_ssdlite:
        return tv_ssdlite.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1
    return None


def imagenet_weights(builder, args: dict) -> WeightsEnum | None:
    """The ImageNet weights of the backbone the builder loads for ``pretrained=imagenet``."""
    if builder is ssd.build_ssd300_vgg16:
        return torchvision.models.VGG16_Weights.IMAGENET1K_FEATURES
    if builder is ssd.build_ssdlite:
        return torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1
    if builder in (
        retinanet.build_retinanet,
        faster_rcnn.build_faster_rcnn,
        fcos.build_fcos,
        ssd.build_ssd,
    ):
        return _backbone(args["backbone"])
    return None


def cache_file(weights: WeightsEnum) -> Path:
    """Where torch's hub keeps (and looks for) a weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


@functools.cache
def downloads_possible(timeout: float = 3.0) -> bool:
    """Whether download.pytorch.org answers (asked once per process, within ``timeout``)."""
    if os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
    except OSError:
        return False
    return True


def resolve(builder, net_cfg: dict, *, synthetic: bool) -> Choice:
    """What ``pretrained: auto`` means for this builder and config, on this machine."""
    if synthetic:
        return Choice("none", "random weights: the built-in shapes data is learnt from scratch")
    args = _settings(builder, net_cfg)
    options = [
        (kind, weights, what)
        for kind, weights, what in (
            ("coco", coco_weights(builder, args), "COCO weights for the whole detector"),
            ("imagenet", imagenet_weights(builder, args), "ImageNet weights for the backbone"),
        )
        if weights is not None
    ]
    for kind, weights, what in options:
        if cache_file(weights).is_file():
            return Choice(kind, f"{what} from torch's cache ({cache_file(weights)})")
    if options and downloads_possible():
        kind, weights, what = options[0]
        return Choice(kind, f"{what}, downloaded from {weights.url}")
    return Choice("none", "random weights (no pretrained weights found)", _warning(options))


def _warning(options: list) -> str:
    if not options:
        return (
            "model.net.pretrained=auto: torchvision has no pretrained weights for this model: "
            "training from random weights, which on a small dataset gives a detector that is "
            "not usable; give a weights file with model.net.pretrained=<file>"
        )
    folder = cache_file(options[0][1]).parent
    fetch = "; or ".join(f"{w.url} ({what})" for _, w, what in options)
    return (
        "model.net.pretrained=auto: no pretrained weights in torch's cache and "
        f"{DOWNLOAD_HOST[0]} does not answer: training from RANDOM weights, which on a small "
        "dataset gives a detector that is not usable (4 minutes on 130 photos: val mAP 0.04). "
        f"On a connected machine fetch {fetch}, and put the file in {folder} (found there "
        "next time) or give it with model.net.pretrained=<file>"
    )
