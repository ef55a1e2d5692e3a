"""Data pipeline: images/s per loader worker for each augmentation preset, against training.

    python benchmarks/data_pipeline.py [--images 400] [--repeats 3] [--out benchmarks/results]
        [overrides ...]

For each preset of ``conf/augmentation`` (none, plain, zoom) this decodes and augments the
default shapes data's training images exactly as a loader worker does (``DetectionDataset``:
decode, albumentations, tensors; one thread, as PyTorch gives each worker) and reports images/s
per worker, then a real ``DataLoader`` (the datamodule's, with 1 and 2 workers) drained as fast
as it gives batches. Set beside the models' training images/s (``train_throughput.json``, when
present): the workers a model needs so that data never waits are its images/s divided by one
worker's. Presets alternate (A B C A B C ...), medians over ``--repeats``. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

PRESETS = ("none", "plain", "zoom")


def _datamodule(preset: str, overrides: list[str], workers: int = 0):
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR
    from lightdet.runs.build import build_datamodule

    run_dir = Path(tempfile.gettempdir()) / "lightdet-data-run"  # nothing written there
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"augmentation={preset}",
                f"data.num_workers={workers}",
                f"paths.output_dir={run_dir}",
                *overrides,
            ],
        )
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    return datamodule


def per_worker(dataset, count: int, start: int) -> float:
    """Images/s of one worker's work (one thread), over ``count`` images from ``start``."""
    n = len(dataset)
    began = time.perf_counter()
    for i in range(start, start + count):
        dataset[i % n]
    return count / (time.perf_counter() - began)


def loader_rate(datamodule, batches: int) -> float:
    """Images/s a training loader gives when nothing else runs (after its first batch)."""
    loader = datamodule.train_dataloader()
    it = iter(loader)
    next(it)
    began = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * loader.batch_size / (time.perf_counter() - began)
    del it
    return rate


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args, overrides = parser.parse_known_args()
    torch.set_num_threads(1)  # what a DataLoader worker runs with
    datasets = {p: _datamodule(p, overrides).datasets["train"] for p in PRESETS}
    for dataset in datasets.values():
        per_worker(dataset, 20, 0)  # warm-up: imports, caches
    rates: dict[str, list[float]] = {p: [] for p in PRESETS}
    for repeat in range(args.repeats):
        for preset, dataset in datasets.items():
            rates[preset].append(per_worker(dataset, args.images, 20 + repeat * args.images))
            print(f"{preset} {repeat + 1}: {rates[preset][-1]:.0f} images/s per worker", flush=True)
    torch.set_num_threads(torch.get_num_threads())
    loaders: dict[str, dict[int, float]] = {}
    for preset in PRESETS:
        loaders[preset] = {}
        for workers in (1, 2):
            datamodule = _datamodule(preset, overrides, workers)
            loaders[preset][workers] = loader_rate(datamodule, args.images // 8)
            print(
                f"{preset}, {workers} workers: {loaders[preset][workers]:.0f} images/s", flush=True
            )
    medians = {p: statistics.median(v) for p, v in rates.items()}
    training = {}
    found = Path(args.out or "benchmarks/results") / "train_throughput.json"
    if found.exists():
        models = json.loads(found.read_text())["models"]
        training = {m: r["lightdet"] for m, r in models.items()}
    if args.out:
        _write(Path(args.out), medians, rates, loaders, training, args, overrides)


def _write(out: Path, medians, rates, loaders, training, args, overrides) -> None:
    import os

    out.mkdir(parents=True, exist_ok=True)
    (out / "data_pipeline.json").write_text(
        json.dumps(
            {
                "per_worker": rates,
                "loader": loaders,
                "training": training,
                "settings": {
                    "images": args.images,
                    "repeats": args.repeats,
                    "overrides": overrides,
                    "cores": os.cpu_count(),
                },
            },
            indent=1,
        )
    )
    lines = [
        "# Data pipeline: images/s per loader worker against training",
        "",
        f"{os.cpu_count()} CPU cores; the default shapes data (192 px JPEG); one worker's work "
        f"(decode, augmentation, tensors) in one thread over {args.images} images, presets in "
        f"turn, median of {args.repeats} (each in brackets); then the datamodule's real training "
        "loader drained as fast as it gives batches. Overrides: "
        f"`{' '.join(overrides) or '(none)'}`.",
        "",
        "| preset | images/s per worker | loader, 1 worker | loader, 2 workers |",
        "|---|---|---|---|",
    ]
    for p, m in medians.items():
        each = ", ".join(f"{v:.0f}" for v in rates[p])
        lines.append(f"| {p} | {m:.0f} ({each}) | {loaders[p][1]:.0f} | {loaders[p][2]:.0f} |")
    if training:
        lines += [
            "",
            "Workers each model needs so that data never waits (its training images/s "
            "from `train_throughput.md`, divided by one worker's rate, rounded up):",
            "",
            "| model | training images/s | " + " | ".join(medians) + " |",
            "|---|---" + "|---" * len(medians) + "|",
        ]
        for model, rate in training.items():
            need = " | ".join(f"{math.ceil(rate / m)} ({rate / m:.2f})" for m in medians.values())
            lines.append(f"| {model} | {rate:.1f} | {need} |")
    (out / "data_pipeline.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
