"""Training throughput: lightdet against a plain PyTorch loop, and where one epoch's time goes.

    python benchmarks/train_throughput.py [retinanet ssd ...] [--batches 24] [--warmup 6]
        [--repeats 2] [--val-batches 8] [--out benchmarks/results] [overrides ...]

For each model, a lightdet run and a plain loop take turns (A B A B ..., each in a fresh
process) on the same files: the default shapes data (VOC folder), the model config's batch size,
image size and precision, the same torch threads and loader workers, no augmentation (the data
pipeline benchmark prices the augmentation presets). Throughput is images/s over ``--batches``
optimizer steps after ``--warmup`` ones, wall-clock from the end of one step to the end of the
last one, so waiting for data and everything a framework does between steps is counted.

- **lightdet**: ``run_training`` as ``make train MODEL=<model>`` runs it (DetectionModule,
  datamodule with its checks, ClearML recording offline, progress bar, throughput monitor,
  checkpoints and the run's results), one epoch of ``warmup + batches`` training batches and
  ``--val-batches`` validation batches, under Lightning's ``SimpleProfiler``: its durations give
  the epoch's breakdown (data wait, forward/backward/step, per-step hooks and logging,
  validation, checkpoint writing).
- **plain**: a torch ``Dataset`` that reads the VOC files with PIL and ElementTree, a
  ``DataLoader`` with the same workers, the same torchvision model built from the model config,
  the same optimizer, ``torch.autocast`` for bf16 as Lightning's ``bf16-mixed`` does, and
  ``zero_grad / backward / step``: nothing else.

Run it alone (a second process on a small machine changes every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("retinanet", "ssd", "ssdlite", "fcos", "faster_rcnn")

# SimpleProfiler actions grouped into the breakdown's parts (Lightning 2.x names)
PARTS = {
    "data wait": lambda a: a == "[_TrainingEpochLoop].train_dataloader_next",
    "forward/backward/step": lambda a: (
        a.startswith("[LightningModule]") and a.endswith(".optimizer_step")
    ),
    "per-step hooks and logging": lambda a: (
        ("on_train_batch_" in a or "on_before_" in a or "on_after_backward" in a)
        and not a.startswith("[Strategy]")
    ),
    "validation": lambda a: (
        a == "[_EvaluationLoop].val_next"
        or ("validation" in a and not a.startswith("[Callback]ModelCheckpoint"))
    ),
    "checkpoint writing": lambda a: (
        a.startswith("[Callback]ModelCheckpoint") or a.startswith("[Callback]ResumeCheckpoint")
    ),
}


def _compose(model: str, overrides: list[str], run_dir: Path):
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                f"model={model}",
                "augmentation=none",
                "test=false",
                f"paths.output_dir={run_dir}",
                *overrides,
            ],
        )


def _lightdet(model: str, args, overrides: list[str], out: Path) -> None:
    import pytorch_lightning as pl

    from lightdet.runs.train import run_training

    steps = args.warmup + args.batches
    ends: list[float] = []
    found: dict = {}

    class Clock(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            ends.append(time.perf_counter())

        def on_fit_end(self, trainer, pl_module):
            durations = trainer.profiler.recorded_durations
            found["actions"] = {k: [sum(v), len(v)] for k, v in durations.items()}
            found["batch_size"] = trainer.datamodule.batch_size
            found["workers"] = trainer.datamodule.num_workers
            found["precision"] = str(trainer.precision)

    run_dir = Path(tempfile.mkdtemp(prefix="lightdet-throughput-")) / "run"
    cfg = _compose(
        model,
        [
            *overrides,
            "trainer.max_epochs=1",
            f"++trainer.limit_train_batches={steps}",
            f"++trainer.limit_val_batches={args.val_batches}",
            "++trainer.profiler=simple",
        ],
        run_dir,
    )
    started = time.perf_counter()
    try:
        run_training(cfg, extra_callbacks=[Clock()], bind_hydra=False)
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)  # its checkpoints: ~180 MB a run
    found["wall_s"] = time.perf_counter() - started
    found["ends"] = ends
    out.write_text(json.dumps(found))


def _voc_items(folder: Path, split: str, class_names: list[str]) -> list[tuple]:
    import xml.etree.ElementTree as ET

    items = []
    for name in (folder / "ImageSets/Main" / f"{split}.txt").read_text().split():
        root = ET.parse(folder / "Annotations" / f"{name}.xml").getroot()
        boxes, labels = [], []
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            boxes.append([float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])
            labels.append(class_names.index(obj.find("name").text) + 1)
        items.append((str(folder / "JPEGImages" / f"{name}.jpg"), boxes, labels))
    return items


class _PlainDataset:
    """What a hand-written loop reads: the image with PIL, the boxes from the XML."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import numpy as np
        import torch
        from PIL import Image

        path, boxes, labels = self.items[i]
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        return image, target


def _collate(batch):
    return tuple(zip(*batch))


def _plain(model: str, args, overrides: list[str], out: Path) -> None:
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from lightdet.runs.build import build_datamodule

    cfg = _compose(model, overrides, Path(tempfile.gettempdir()) / "lightdet-plain-loop")  # unused
    pl.seed_everything(int(cfg.seed), verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()  # the shapes folder (generated once; not timed)
    folder = Path(datamodule.source.folder) / "VOC"
    items = _voc_items(folder, "train", datamodule.class_names)
    workers = datamodule.num_workers
    loader = DataLoader(
        _PlainDataset(items),
        batch_size=datamodule.batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=_collate,
        drop_last=True,
    )
    net = instantiate(cfg.model.net, num_classes=datamodule.num_classes, pretrained="none")
    optimizer = instantiate(cfg.model.optimizer)(net.parameters())
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    net.train()
    ends = []
    steps = args.warmup + args.batches
    for images, targets in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = net(list(images), list(targets))
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ends.append(time.perf_counter())
        if len(ends) == steps:
            break
    out.write_text(
        json.dumps(
            {
                "ends": ends,
                "batch_size": datamodule.batch_size,
                "workers": workers,
                "precision": "bf16-mixed" if bf16 else "32",
                "threads": torch.get_num_threads(),
            }
        )
    )


def images_per_s(run: dict, warmup: int) -> float:
    ends = run["ends"]
    return (len(ends) - warmup) * run["batch_size"] / (ends[-1] - ends[warmup - 1])


def breakdown(actions: dict[str, list]) -> dict[str, float]:
    """Seconds per part of the epoch; ``other`` is the epoch's wall time the parts leave."""
    parts = {p: sum(t for a, (t, _) in actions.items() if match(a)) for p, match in PARTS.items()}
    total = actions.get("run_training_epoch", [0.0])[0]
    parts["epoch (training loop, with validation and checkpoints)"] = total
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--batches", type=int, default=24, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=6, help="steps before the timing")
    parser.add_argument("--val-batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="A B pairs per model")
    parser.add_argument("--out", default=None, help="folder for train_throughput.json/.md")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.one:
        kind, model, out = args.one
        (_lightdet if kind == "lightdet" else _plain)(model, args, overrides, Path(out))
        return
    models = [m for m in args.models if not m.startswith("-")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CLEARML_OFFLINE_MODE": "1",
            "CLEARML_CACHE_DIR": f"{tmp}/clearml",
            "PYTHONPATH": str(REPO / "src"),
        }
        for model in models:
            runs: dict[str, list] = {"lightdet": [], "plain": []}
            for repeat in range(args.repeats):
                for kind in ("lightdet", "plain"):
                    out = Path(tmp) / f"{model}-{kind}-{repeat}.json"
                    command = [
                        sys.executable,
                        __file__,
                        "--one",
                        kind,
                        model,
                        str(out),
                        f"--batches={args.batches}",
                        f"--warmup={args.warmup}",
                        f"--val-batches={args.val_batches}",
                        *overrides,
                    ]
                    done = subprocess.run(command, env=env, capture_output=True, text=True)
                    if done.returncode:
                        sys.exit(f"{model} {kind} failed:\n{done.stderr[-3000:]}")
                    run = json.loads(out.read_text())
                    run["images_per_s"] = images_per_s(run, args.warmup)
                    runs[kind].append(run)
                    print(
                        f"{model} {kind} {repeat + 1}: {run['images_per_s']:.2f} images/s",
                        flush=True,
                    )
            results[model] = _summary(runs)
            r = results[model]
            print(
                f"{model}: lightdet {r['lightdet']:.2f}, plain {r['plain']:.2f} images/s, "
                f"ratio {r['ratio']:.3f}",
                flush=True,
            )
    if args.out:
        _write(Path(args.out), results, args, overrides)


def _summary(runs: dict[str, list]) -> dict:
    med = {k: statistics.median(r["images_per_s"] for r in v) for k, v in runs.items()}
    ratios = [
        a["images_per_s"] / b["images_per_s"] for a, b in zip(runs["lightdet"], runs["plain"])
    ]
    parts = [breakdown(r["actions"]) for r in runs["lightdet"]]
    first = runs["lightdet"][0]
    return {
        "lightdet": med["lightdet"],
        "plain": med["plain"],
        "ratio": med["lightdet"] / med["plain"],
        "pair_ratios": ratios,
        "runs": {k: [r["images_per_s"] for r in v] for k, v in runs.items()},
        "batch_size": first["batch_size"],
        "workers": first["workers"],
        "precision": first["precision"],
        "threads": runs["plain"][0]["threads"],
        "breakdown": {p: statistics.median(b[p] for b in parts) for p in parts[0]},
        "actions": first["actions"],
    }


def _write(out: Path, results: dict, args, overrides: list[str]) -> None:
    import platform

    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "batches": args.batches,
        "warmup": args.warmup,
        "val_batches": args.val_batches,
        "repeats": args.repeats,
        "overrides": overrides,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    (out / "train_throughput.json").write_text(
        json.dumps({"settings": meta, "models": results}, indent=1)
    )
    lines = [
        "# Training throughput: lightdet against a plain PyTorch loop",
        "",
        f"{meta['cores']} CPU cores, no GPU; shapes data (192 px), no augmentation, each model's "
        f"config batch and precision; {args.batches} timed steps after {args.warmup} warm-up "
        f"ones; {args.repeats} lightdet/plain pairs run in turn, each in a fresh process; "
        "medians (each run in brackets). Overrides: "
        f"`{' '.join(overrides) or '(none)'}`.",
        "",
        "| model | batch | precision | workers | threads | lightdet images/s | plain images/s "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, r in results.items():
        runs = {k: ", ".join(f"{v:.2f}" for v in r["runs"][k]) for k in r["runs"]}
        lines.append(
            f"| {model} | {r['batch_size']} | {r['precision']} | {r['workers']} | {r['threads']} "
            f"| {r['lightdet']:.2f} ({runs['lightdet']}) | {r['plain']:.2f} ({runs['plain']}) "
            f"| **{r['ratio']:.3f}** |"
        )
    lines += [
        "",
        "## Where lightdet's epoch goes (SimpleProfiler, seconds, median of the runs)",
        "",
        f"One epoch of {args.warmup + args.batches} training batches and "
        f"{args.val_batches} validation batches, checkpoints and results written.",
        "",
    ]
    names = list(next(iter(results.values()))["breakdown"])
    lines += ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for model, r in results.items():
        lines.append(f"| {model} | " + " | ".join(f"{r['breakdown'][n]:.2f}" for n in names) + " |")
    (out / "train_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
