"""COCO bbox evaluation backends against pycocotools: seconds, exactness, peak memory.

    python benchmarks/coco_backends.py [--images 5000] [--repeats 2] [--out benchmarks/results]

Measures the pycocotools-compatible backends that are installed (pycocotools, faster-coco-eval
(lightdet's), hotcoco, ultrafast-pycocotools; the last two are not lightdet dependencies:
install them where you run this, e.g. a throwaway virtual environment) on the evaluation
benchmark's COCO-val-sized data (``eval_speed.make_data``: 5,000 images, 80 classes, 100
detections an image), written once as JSON files: each run, in a fresh process, loads the
ground truth and detection files, evaluates, accumulates and summarizes. Backends alternate
(A B C D A B C D), medians; the largest difference of the 12 numbers from pycocotools'.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import NAMES, make_data  # noqa: E402

BACKENDS = {  # name: (distribution, module of COCO, module of the evaluator, evaluator class)
    "pycocotools": ("pycocotools", "pycocotools.coco", "pycocotools.cocoeval", "COCOeval"),
    "faster-coco-eval": (
        "faster-coco-eval",
        "faster_coco_eval",
        "faster_coco_eval",
        "COCOeval_faster",
    ),
    "hotcoco": ("hotcoco", "hotcoco", "hotcoco", "COCOeval"),
    "ultrafast-pycocotools": (
        "ultrafast-pycocotools",
        "ultrafast_pycocotools.coco",
        "ultrafast_pycocotools.cocoeval",
        "COCOeval",
    ),
}


def _one(backend: str, gt_path: str, dt_path: str) -> dict:
    import importlib

    _, coco_module, eval_module, eval_class = BACKENDS[backend]
    coco_cls = importlib.import_module(coco_module).COCO
    evaluator_cls = getattr(importlib.import_module(eval_module), eval_class)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls(gt_path)
        dt = gt.loadRes(dt_path)
        evaluator = evaluator_cls(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "stats": [float(s) for s in list(evaluator.stats)[:12]],
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _installed(backend: str) -> str | None:
    try:
        return metadata.version(BACKENDS[backend][0])
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(*args.one)))
        return
    versions = {b: _installed(b) for b in BACKENDS}
    present = [b for b, v in versions.items() if v]
    print(
        "installed: "
        + ", ".join(f"{b} {versions[b]}" for b in present)
        + "; missing: "
        + (", ".join(b for b in BACKENDS if not versions[b]) or "none")
    )
    runs: dict[str, list[dict]] = {b: [] for b in present}
    with tempfile.TemporaryDirectory() as tmp:
        gt, dets = make_data(args.images)
        gt_path, dt_path = Path(tmp) / "gt.json", Path(tmp) / "dt.json"
        gt_path.write_text(json.dumps(gt))
        dt_path.write_text(json.dumps(dets))
        for repeat in range(args.repeats):
            for backend in present:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", backend, str(gt_path), str(dt_path)],
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    print(f"{backend} failed: {done.stderr.strip().splitlines()[-1]}")
                    continue
                runs[backend].append(json.loads(done.stdout.splitlines()[-1]))
                print(f"{backend} {repeat + 1}: {runs[backend][-1]['seconds']:.2f} s", flush=True)
    reference = runs["pycocotools"][0]["stats"] if runs.get("pycocotools") else None
    base = statistics.median(r["seconds"] for r in runs["pycocotools"]) if reference else None
    rows = []
    for backend, results in runs.items():
        if not results:
            continue
        seconds = statistics.median(r["seconds"] for r in results)
        diff = (
            max(abs(a - b) for a, b in zip(results[0]["stats"], reference)) if reference else None
        )
        worst = (
            NAMES[max(range(12), key=lambda i: abs(results[0]["stats"][i] - reference[i]))]
            if reference
            else ""
        )
        rows.append(
            {
                "backend": backend,
                "version": versions[backend],
                "seconds": seconds,
                "x_pycocotools": base / seconds if base else None,
                "max_diff": diff,
                "worst_metric": worst,
                "peak_mib": max(r["peak_mib"] for r in results),
                "runs": [r["seconds"] for r in results],
            }
        )
        print(
            f"{backend}: {seconds:.2f} s, x{rows[-1]['x_pycocotools'] or 0:.1f}, largest "
            f"difference {diff:.2g} ({worst})",
            flush=True,
        )
    if args.out:
        out = Path(args.out)
        (out / "coco_backends.json").write_text(
            json.dumps({"images": args.images, "rows": rows}, indent=1)
        )
        lines = [
            "# COCO evaluation backends against pycocotools",
            "",
            f"{args.images:,} images, 80 classes, 100 detections an image "
            "(`eval_speed.make_data`), from JSON files to the 12 numbers, fresh process "
            f"each, {args.repeats} rounds in turn, medians.",
            "",
            "| backend | version | seconds (runs) | x pycocotools | largest difference "
            "(metric) | peak MiB |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            each = ", ".join(f"{s:.2f}" for s in r["runs"])
            lines.append(
                f"| {r['backend']} | {r['version']} | {r['seconds']:.2f} ({each}) | "
                f"{r['x_pycocotools']:.1f} | {r['max_diff']:.2g} ({r['worst_metric']}) "
                f"| {r['peak_mib']:.0f} |"
            )
        (out / "coco_backends.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
