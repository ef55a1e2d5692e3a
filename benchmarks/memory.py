"""Peak resident memory of training, per model, and how it grows with batch and image size.

    python benchmarks/memory.py [retinanet ssd ...] [--steps 4] [--out benchmarks/results]

Each measurement is a fresh process that builds the model config as ``make train`` does (its
precision, AdamW, the default shapes data with no augmentation and no loader workers, so that
one process holds everything) and trains ``--steps`` optimizer steps; reported: the process's
peak resident memory (``ru_maxrss``) and, apart, the peak before the first step (imports,
data index, model, optimizer). Sizes: the model's default batch and input size, the batch
doubled, and the input side doubled (``model.net.min_size``/``max_size``, or ``size`` for SSD;
a model config without one, SSDlite at its builder's 320 px, has no such row). Run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("retinanet", "ssd", "ssdlite", "fcos", "faster_rcnn")


def _one(model: str, steps: int, batch_factor: int, size_factor: int) -> dict:
    import itertools
    import resource
    import tempfile

    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from lightdet.cli import CONFIG_DIR
    from lightdet.lightning.host_memory import keep_freed_memory
    from lightdet.lightning.optimization import build_optimizer
    from lightdet.runs.build import build_datamodule

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    run_dir = Path(tempfile.gettempdir()) / "lightdet-memory-run"  # nothing written there
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"model={model}",
                "augmentation=none",
                "data.num_workers=0",
                f"paths.output_dir={run_dir}",
            ],
        )
    net_cfg = cfg.model.net
    sizes = {
        k: int(net_cfg[k]) * size_factor
        for k in ("min_size", "max_size", "size")
        if net_cfg.get(k) is not None
    }
    keep_freed_memory()
    cfg.data.batch_size = int(cfg.data.batch_size) * batch_factor
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    torch.manual_seed(0)
    net = instantiate(
        net_cfg, num_classes=datamodule.num_classes, **{"pretrained": "none", **sizes}
    )
    optimizer = build_optimizer(instantiate(cfg.model.optimizer), [{"params": net.parameters()}])
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    before = peak_mib()
    batches = itertools.cycle(datamodule.train_dataloader())
    net.train()
    for _ in range(steps):
        images, targets = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = sum(net(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {
        "model": model,
        "batch": int(cfg.data.batch_size),
        "input": sizes,
        "precision": "bf16-mixed" if bf16 else "32",
        "before_mib": before,
        "peak_mib": peak_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        model, batch_factor, size_factor = args.one
        print(json.dumps(_one(model, args.steps, int(batch_factor), int(size_factor))))
        return
    env = {**os.environ, "CLEARML_OFFLINE_MODE": "1", "PYTHONPATH": str(REPO / "src")}
    rows = []
    for model in args.models:
        for label, batch_factor, size_factor in (
            ("default", 1, 1),
            ("batch x2", 2, 1),
            ("input side x2", 1, 2),
        ):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    model,
                    str(batch_factor),
                    str(size_factor),
                    f"--steps={args.steps}",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                sys.exit(f"{model} {label} failed:\n{done.stderr[-3000:]}")
            row = {"case": label, **json.loads(done.stdout.splitlines()[-1])}
            if size_factor > 1 and not row["input"]:
                continue  # no input size in the model config to double
            rows.append(row)
            print(
                f"{model} {label}: batch {row['batch']}, input {row['input']}: peak "
                f"{row['peak_mib']:.0f} MiB ({row['before_mib']:.0f} before the first step)",
                flush=True,
            )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "memory.json").write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
        lines = [
            "# Peak resident memory of training (CPU)",
            "",
            f"{os.cpu_count()} CPU cores; each row a fresh process: the model config's "
            f"precision, fused AdamW, {args.steps} training steps on the shapes data, no "
            "loader workers (one process holds everything); `ru_maxrss`.",
            "",
            "| model | case | batch | input | precision | peak MiB | before the first "
            "step MiB | training adds MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            size = "/".join(str(v) for v in r["input"].values()) or "default"
            lines.append(
                f"| {r['model']} | {r['case']} | {r['batch']} | {size} | "
                f"{r['precision']} | {r['peak_mib']:.0f} | {r['before_mib']:.0f} | "
                f"{r['peak_mib'] - r['before_mib']:.0f} |"
            )
        (out / "memory.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
