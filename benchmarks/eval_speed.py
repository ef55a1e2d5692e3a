"""lightdet's COCO evaluation against pycocotools on a COCO-validation-sized set: time and
exactness of the 12 numbers, growth with the number of images, peak memory.

    python benchmarks/eval_speed.py [--images 1000 5000] [--rounds 2] [--out benchmarks/results]

The data is synthetic and seeded (coordinates on a 1/16 px grid and float32 scores, so every
method sees the same numbers): 80 classes, 1-15 ground-truth boxes per image (about 7.3, as
COCO val2017), 100 detections per image (jittered copies of the ground truth, with wrong classes
and random boxes among them, scores drawn so precision falls with rank): 5,000 images give
about 36,000 boxes and 500,000 detections, COCO val's size. Each measurement runs in a fresh
process (peak resident memory is that process's), in turn (A B A B ...), and the figures are
medians over the rounds. Measured:

- ``pycocotools``: ``COCO`` + ``loadRes`` + ``COCOeval`` evaluate/accumulate/summarize, the
  reference;
- ``lightdet report``: :func:`lightdet.evaluation.coco.coco_evaluate`, what ``make eval`` and the
  run's ``results/`` use, from COCO dicts (hotcoco, pycocotools' layout);
- ``lightdet validation``: a whole validation pass's evaluation, as every validation epoch
  runs it (:class:`lightdet.lightning.recorder.EvaluationRecorder` fed tensors per batch of 8
  images, then :func:`lightdet.evaluation.report.build_report`: COCO, VOC AP, the F1
  threshold and the confusion matrix, the one report the logged metrics come from).

Run it alone: anything else on the CPU moves the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
METHODS = ("pycocotools", "lightdet report", "lightdet validation")


def make_data(n_images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """COCO ground truth and detections, seeded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    categories = [{"id": i + 1, "name": f"class{i + 1}"} for i in range(80)]
    ann_id = 1
    for image_id in range(1, n_images + 1):
        w, h = int(rng.integers(320, 641)), int(rng.integers(240, 481))
        images.append({"id": image_id, "width": w, "height": h, "file_name": f"{image_id}.jpg"})
        boxes = []
        for _ in range(int(rng.integers(1, 16))):
            side = float(np.exp(rng.uniform(np.log(6), np.log(min(w, h) * 0.9))))
            bw, bh = side * rng.uniform(0.5, 1.5), side * rng.uniform(0.5, 1.5)
            x, y = rng.uniform(0, max(1.0, w - bw)), rng.uniform(0, max(1.0, h - bh))
            x, y, bw, bh = _q(x), _q(y), _q(min(bw, w - x)), _q(min(bh, h - y))
            cat = int(rng.integers(1, 81))
            area = float(np.float32(bw) * np.float32(bh))  # as a float32 pipeline computes it
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x, y, bw, bh],
                    "area": area,
                    "iscrowd": int(rng.random() < 0.01),
                }
            )
            boxes.append((x, y, bw, bh, cat))
            ann_id += 1
        for k in range(100):
            if k < 3 * len(boxes):  # near a ground-truth box, sometimes of the wrong class
                x, y, bw, bh, cat = boxes[k % len(boxes)]
                jitter = rng.normal(0, 0.1, 4) * [bw, bh, bw, bh]
                x, y, bw, bh = (
                    x + jitter[0],
                    y + jitter[1],
                    max(1.0, bw + jitter[2]),
                    max(1.0, bh + jitter[3]),
                )
                if rng.random() < 0.2:
                    cat = int(rng.integers(1, 81))
                score = float(rng.beta(5, 2))
            else:  # background
                bw, bh = float(rng.uniform(4, w / 2)), float(rng.uniform(4, h / 2))
                x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
                cat, score = int(rng.integers(1, 81)), float(rng.beta(1, 5))
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [_q(x), _q(y), _q(bw), _q(bh)],
                    "score": float(np.float32(score)),
                }
            )
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, detections


def _q(value: float) -> float:
    """A coordinate on a 1/16 px grid: exact in float32, and so are its sums, so the float32
    tensors a detector gives and the JSON pycocotools reads hold the same numbers."""
    return round(float(value) * 16) / 16


def run_one(method: str, n_images: int) -> dict:
    """One measurement, in this process: seconds and the 12 numbers."""
    import contextlib
    import io

    gt, dets = make_data(n_images)
    if method == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = gt
            coco.createIndex()
            evaluator = COCOeval(coco, coco.loadRes(dets), iouType="bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = [float(s) for s in evaluator.stats[:12]]
    elif method == "lightdet report":
        from lightdet.evaluation.coco import coco_evaluate

        start = time.perf_counter()
        stats = coco_evaluate(gt, dets).stats
    else:
        stats, start = _validation_pass(gt, dets)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "stats": stats, "peak_mib": peak}


def _validation_pass(gt: dict, dets: list[dict]) -> tuple[list[float], float]:
    """A validation pass's evaluation, fed as the validation loop does: tensors per batch of 8
    images (labels are the category ids here: a dataset's 1..K). The conversion to tensors is
    not timed (the model produces tensors)."""
    from collections import defaultdict

    import torch

    from lightdet.evaluation.report import build_report
    from lightdet.lightning.recorder import EvaluationRecorder

    by_image_gt, by_image_dt = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        by_image_gt[a["image_id"]].append(a)
    for d in dets:
        by_image_dt[d["image_id"]].append(d)

    def xyxy(rows):
        b = torch.tensor([r["bbox"] for r in rows], dtype=torch.float32).reshape(-1, 4)
        return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1)

    batches, batch = [], ([], [], [])
    for image in gt["images"]:
        g, d = by_image_gt[image["id"]], by_image_dt[image["id"]]
        batch[0].append(torch.zeros(()).expand(3, image["height"], image["width"]))  # a size
        batch[1].append(
            {
                "boxes": xyxy(g),
                "labels": torch.tensor([r["category_id"] for r in g]),
                "iscrowd": torch.tensor([bool(r["iscrowd"]) for r in g]),
                "image_id": torch.tensor(image["id"]),
            }
        )
        batch[2].append(
            {
                "boxes": xyxy(d),
                "scores": torch.tensor([r["score"] for r in d]),
                "labels": torch.tensor([r["category_id"] for r in d]),
            }
        )
        if len(batch[0]) == 8:
            batches.append(batch)
            batch = ([], [], [])
    if batch[0]:
        batches.append(batch)
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    recorder = EvaluationRecorder()
    start = time.perf_counter()
    recorder.start()
    for images, targets, preds in batches:
        recorder.keep(images, targets, preds)
    report = build_report(recorder.finish(), names, {}, "val")
    return list(report.coco.stats), start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--out", default=None, help="folder for eval_speed.json/.md")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    results: dict = {}
    for n in args.images:
        for round_ in range(args.rounds):
            for method in args.methods:
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", method, str(n)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                one = json.loads(proc.stdout.strip().splitlines()[-1])
                results.setdefault(str(n), {}).setdefault(method, []).append(one)
                print(
                    f"{n} images, round {round_ + 1}, {method}: {one['seconds']:.2f} s, "
                    f"peak {one['peak_mib']:.0f} MiB",
                    flush=True,
                )
    lines = _report(results)
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval_speed.json").write_text(json.dumps(results, indent=1))
        (out / "eval_speed.md").write_text("\n".join(lines) + "\n")


def cpu_description() -> str:
    """The CPU's model, its wide-vector flags and the core count (for result files)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    rows = text.splitlines()
    model = next((x.split(":", 1)[1].strip() for x in rows if x.startswith("model name")), "")
    flags = next((x.split(":", 1)[1].split() for x in rows if x.startswith("flags")), [])
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model or platform.processor()} ({', '.join(simd) or 'no AVX2'}), {cores} cores"


def _report(results: dict) -> list[str]:
    import numpy as np

    lines = [
        "# Evaluation: lightdet against pycocotools",
        "",
        f"CPU: {cpu_description()}; Python {platform.python_version()}, numpy {np.__version__}; "
        "each measurement in a fresh process, rounds in turn, nothing else running.",
        "",
        "| images | method | seconds (median; runs) | x faster than pycocotools | "
        "largest difference of the 12 numbers | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for n, methods in results.items():
        reference = methods.get("pycocotools")
        ref_time = statistics.median(r["seconds"] for r in reference) if reference else None
        for method, runs in methods.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            shown = ", ".join(f"{r['seconds']:.2f}" for r in runs)
            speed = f"{ref_time / seconds:.1f}" if ref_time else "-"
            diff = "-"
            if reference and method != "pycocotools":
                pairs = zip(runs[0]["stats"], reference[0]["stats"], strict=True)
                diff = f"{max(abs(a - b) for a, b in pairs):.1e}"
            peak = statistics.median(r["peak_mib"] for r in runs)
            lines.append(
                f"| {n} | {method} | {seconds:.2f} ({shown}) | {speed} | {diff} | {peak:.0f} |"
            )
    return lines


if __name__ == "__main__":
    main()
