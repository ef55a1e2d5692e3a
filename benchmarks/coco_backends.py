"""COCO bbox evaluation backends against pycocotools: seconds, exactness, peak memory.

    python benchmarks/coco_backends.py [--images 5000] [--repeats 2] [--threads 1 2]
        [--out benchmarks/results]

Measures the pycocotools-compatible backends that are installed (pycocotools, faster-coco-eval,
hotcoco (lightdet's), ultrafast-pycocotools, vernier; the last two are not lightdet
dependencies: install them where you run this, e.g. a throwaway virtual environment) on the
evaluation benchmark's COCO-val-sized data (``eval_speed.make_data``: 5,000 images, 80 classes,
100 detections an image), written once as JSON files: each run, in a fresh process, loads the
ground truth and detection files, evaluates, accumulates and summarizes. The Rust backends
(hotcoco, vernier) run a thread pool: each is measured at every ``--threads`` count
(``RAYON_NUM_THREADS``, ``OMP_NUM_THREADS``), so "1" compares them at equal threads with the
single-threaded ones. Backends alternate (A B C D A B C D), medians.

Exactness: the largest difference from pycocotools of the 12 numbers and of the ``precision``
``[T, R, K, A, M]``, ``recall`` ``[T, K, A, M]`` and ``scores`` arrays, on this data and on the
edge-case set lightdet's parity test uses (``tests/data/coco_parity``: crowd boxes, empty
images, images without detections, more than 100 detections an image, tied scores, a class
without ground truth, boxes on the small/medium/large borders).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import NAMES, cpu_description, make_data  # noqa: E402

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
    # vernier's drop-in evaluator reads pycocotools' COCO objects (its own loader is another API)
    "vernier": ("vernier", "pycocotools.coco", "vernier", "COCOeval"),
}
THREADED = ("hotcoco", "vernier")  # rayon pools: measured at each --threads count
PARITY = Path(__file__).resolve().parents[1] / "tests" / "data" / "coco_parity"


def _one(backend: str, gt_path: str, dt_path: str, arrays: str) -> dict:
    """One evaluation in this process; its arrays go to ``arrays`` (.npz)."""
    import importlib

    import numpy as np

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
    np.savez(
        arrays, **{k: np.asarray(evaluator.eval[k]) for k in ("precision", "recall", "scores")}
    )
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


def _measure(backend: str, threads: int, gt: Path, dt: Path, arrays: Path) -> dict | None:
    """One run in a fresh process at ``threads`` threads; None (said) when it failed."""
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--one", backend, str(gt), str(dt), str(arrays)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        print(f"{backend} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        return None
    result = json.loads(done.stdout.splitlines()[-1])
    with np.load(arrays) as loaded:
        result["arrays"] = {k: loaded[k] for k in loaded.files}
    return result


def _differences(result: dict, reference: dict) -> dict:
    """Largest absolute differences from the reference: the 12 numbers (and which), arrays."""
    gaps = [abs(a - b) for a, b in zip(result["stats"], reference["stats"])]
    out = {"stats": max(gaps), "worst_metric": NAMES[gaps.index(max(gaps))]}
    for name, ref in reference["arrays"].items():
        mine = result["arrays"][name]
        out[name] = float(np.abs(mine - ref).max()) if mine.shape == ref.shape else float("inf")
    return out


def _parity(configs: list[tuple[str, int]], tmp: Path) -> dict:
    """Each backend's differences from pycocotools on the parity test's edge cases."""
    gt, dt = PARITY / "ground_truth.json", PARITY / "detections.json"
    if not gt.exists():
        return {}
    runs = {c: _measure(*c, gt, dt, tmp / "parity.npz") for c in configs}
    reference = runs.get(("pycocotools", 1))
    return {c: _differences(r, reference) for c, r in runs.items() if r and reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(*args.one)))
        return
    versions = {b: _installed(b) for b in BACKENDS}
    present = [b for b, v in versions.items() if v]
    missing = ", ".join(b for b in BACKENDS if not versions[b]) or "none"
    print(
        "installed: " + ", ".join(f"{b} {versions[b]}" for b in present) + f"; missing: {missing}"
    )
    threads = sorted(set(args.threads))
    configs = [(b, t) for b in present for t in (threads if b in THREADED else [1])]
    runs: dict[tuple[str, int], list[dict]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        gt, dets = make_data(args.images)
        gt_path, dt_path = tmp / "gt.json", tmp / "dt.json"
        gt_path.write_text(json.dumps(gt))
        dt_path.write_text(json.dumps(dets))
        del gt, dets
        for repeat in range(args.repeats):
            for backend, n in configs:
                result = _measure(backend, n, gt_path, dt_path, tmp / f"{backend}-{n}.npz")
                if result:
                    runs[backend, n].append(result)
                    print(f"{backend} x{n} {repeat + 1}: {result['seconds']:.2f} s", flush=True)
        parity = _parity(configs, tmp)
    rows = _rows(runs, parity, versions)
    if args.out:
        _write(Path(args.out), rows, args)


def _rows(runs: dict, parity: dict, versions: dict) -> list[dict]:
    reference = (runs.get(("pycocotools", 1)) or [None])[0]
    base = statistics.median(r["seconds"] for r in runs["pycocotools", 1]) if reference else None
    rows = []
    for (backend, n), results in runs.items():
        if not results:
            continue
        seconds = statistics.median(r["seconds"] for r in results)
        diff = _differences(results[0], reference) if reference else {}
        edge = parity.get((backend, n), {})
        rows.append(
            {
                "backend": backend,
                "version": versions[backend],
                "threads": n,
                "seconds": seconds,
                "runs": [r["seconds"] for r in results],
                "x_pycocotools": base / seconds if base else None,
                "difference": diff,
                "edge_cases": edge,
                "peak_mib": max(r["peak_mib"] for r in results),
            }
        )
        print(
            f"{backend} x{n}: {seconds:.2f} s, x{rows[-1]['x_pycocotools'] or 0:.1f}; largest "
            f"difference: 12 numbers {diff.get('stats', 0):.2g}, precision "
            f"{diff.get('precision', 0):.2g}, recall {diff.get('recall', 0):.2g}; edge cases "
            f"{_largest(edge) if edge else 'not run'}",
            flush=True,
        )
    return rows


def _largest(diff: dict) -> float:
    return max((v for k, v in diff.items() if k != "worst_metric"), default=float("nan"))


def _write(out: Path, rows: list[dict], args: argparse.Namespace) -> None:
    (out / "coco_backends.json").write_text(
        json.dumps({"images": args.images, "cpu": cpu_description(), "rows": rows}, indent=1)
    )
    lines = [
        "# COCO evaluation backends against pycocotools",
        "",
        f"{args.images:,} images, 80 classes, 100 detections an image "
        "(`eval_speed.make_data`), from JSON files to the 12 numbers, fresh process "
        f"each, {args.repeats} rounds in turn, medians. CPU: {cpu_description()}; "
        "nothing else ran.",
        "Differences are the largest absolute ones from pycocotools: the 12 numbers, the "
        "precision/recall/scores arrays, and every number and array of the edge-case set "
        "(`tests/data/coco_parity`).",
        "",
        "| backend | version | threads | seconds (runs) | x pycocotools | 12 numbers (worst) "
        "| precision | recall | edge cases | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        each = ", ".join(f"{s:.2f}" for s in r["runs"])
        d = r["difference"]
        lines.append(
            f"| {r['backend']} | {r['version']} | {r['threads']} | {r['seconds']:.2f} ({each}) "
            f"| {r['x_pycocotools']:.1f} | {d['stats']:.2g} ({d['worst_metric']}) "
            f"| {d['precision']:.2g} | {d['recall']:.2g} | {_largest(r['edge_cases']):.2g} "
            f"| {r['peak_mib']:.0f} |"
        )
    (out / "coco_backends.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
