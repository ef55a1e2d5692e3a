"""CPU seconds per training iteration of each model config, at its default size and batch.

    python benchmarks/train_speed.py [retinanet ssd ...] [--steps 10] [--precision bf16]

Builds each ``conf/model/<name>.yaml`` exactly as ``make train MODEL=<name>`` does, on the
shapes data (generated if missing), and times optimizer steps (forward, backward, AdamW) at the
precision the composed trainer uses (bf16 autocast unless the model config prefers fp32; or
``--precision``), after two warm-up steps. Prints one row per model.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lightdet.cli import CONFIG_DIR
from lightdet.runs.build import build_datamodule

MODELS = ("retinanet", "retinanet_v2", "ssd", "ssd300_vgg16", "ssdlite", "fcos", "faster_rcnn")


def measure(model: str, steps: int, precision: str | None) -> tuple[int, float, str]:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", "data.num_workers=0"])
    precision = precision or ("bf16" if str(cfg.trainer.precision).startswith("bf16") else "32")
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    torch.manual_seed(0)
    net = instantiate(cfg.model.net, num_classes=datamodule.num_classes, pretrained="none")
    optimizer = instantiate(cfg.model.optimizer)(net.parameters())
    batches = itertools.cycle(datamodule.train_dataloader())
    net.train()
    times = []
    for i in range(steps + 2):
        images, targets = next(batches)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = sum(net(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 2:  # warm-up: allocator, autotuning
            times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in net.parameters())
    return params, sum(times) / len(times), precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--precision",
        choices=("bf16", "32"),
        default=None,
        help="override the configured precision",
    )
    args = parser.parse_args()
    print(
        f"torch threads: {torch.get_num_threads()}, batch from each data config, {args.steps} steps"
    )
    print(f"{'model':<14} {'params (M)':>10} {'s/iter':>8} precision")
    for model in args.models:
        params, seconds, precision = measure(model, args.steps, args.precision)
        print(f"{model:<14} {params / 1e6:>10.1f} {seconds:>8.3f} {precision}", flush=True)


if __name__ == "__main__":
    main()
