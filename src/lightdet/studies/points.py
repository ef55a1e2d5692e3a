"""A study's points: one per cell and runtime (``study.latency.runtimes``). The same model in
PyTorch, as its ONNX float32 file and as its INT8 file is three points on the speed/accuracy
plot and three rows of the table, each with its runtime, threads and batch.

A file runtime's accuracy is the cell's (its best epoch's val metrics) plus the change the file
makes, measured on the whole validation split against PyTorch by the export's check
(:func:`lightdet.deploy.runtimes.prepare`): mAP and mAP50; metrics that check does not measure
are left empty for it rather than copied. Where the study repeats seeds, the change is
measured on the timed checkpoint (the cell's first seed) and added to every seed's value.
"""

from __future__ import annotations

from pathlib import Path

from lightdet.deploy.runtimes import FILE_RUNTIMES
from lightdet.studies.spec import read_result, write_json

# the export check's metrics, as a study names them
CHECKED = {"map": "val/map", "map_50": "val/map_50"}


def deploy_cell(cell: dict, runtimes: list[str], calibration_images: int) -> dict:
    """The cell's files for the file runtimes and their accuracy (``prepare``), made once per
    checkpoint and request and reused from ``deployed/result.json`` in its folder after that."""
    from lightdet.deploy.runtimes import prepare_in_subprocess

    folder, checkpoint = Path(cell["folder"]) / "deployed", Path(cell["checkpoint"])
    stat = checkpoint.stat()
    stamp = {
        "checkpoint": str(checkpoint),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "runtimes": sorted(r for r in runtimes if r in FILE_RUNTIMES),
        "calibration_images": int(calibration_images),
    }
    cached = read_result(folder)
    if (
        cached
        and cached.get("stamp") == stamp
        and all(Path(p).is_file() for p in cached["deployed"]["files"].values())
    ):
        return cached["deployed"]
    print(f"exporting {cell['label']} for {', '.join(stamp['runtimes'])}...", flush=True)
    deployed = prepare_in_subprocess(checkpoint, folder, stamp["runtimes"], int(calibration_images))
    write_json(folder / "result.json", {"stamp": stamp, "deployed": deployed})
    return deployed


def runtime_points(cells: list[dict], runtimes: list[str]) -> list[dict]:
    """One entry per finished cell and runtime (failed cells once, as they are): the cell's
    fields with ``runtime``, ``speed`` (that runtime's), ``metrics`` (see the module
    docstring) and ``label`` (the cell's, and `` · <runtime>`` for a file runtime)."""
    points = []
    for cell in cells:
        if cell.get("status") != "finished":
            points.append(cell)
            continue
        for runtime in runtimes:
            speed = (cell.get("speeds") or {}).get(runtime)
            if runtime == "pytorch":
                points.append({**cell, "runtime": runtime, "speed": speed, "cell": cell["label"]})
                continue
            coco = cell["deployed"]["coco"]
            change = {
                CHECKED[k]: coco[runtime][k] - coco["pytorch"][k]
                for k in coco[runtime]
                if k in CHECKED
            }
            metrics = {m: cell["metrics"][m] + d for m, d in change.items() if m in cell["metrics"]}
            seeds = cell.get("seed_values") or {}  # the change measured once, on the timed seed
            shifted = {m: [v + change[m] for v in seeds[m]] for m in change if m in seeds}
            interval = {m: h for m, h in (cell.get("ci") or {}).items() if m in change}
            points.append(
                {
                    **cell,
                    "label": f"{cell['label']} · {runtime}",
                    "cell": cell["label"],
                    "runtime": runtime,
                    "speed": speed,
                    "metrics": metrics,
                    "seed_values": shifted,
                    "ci": interval,
                    "metric_change": change,
                    "file": cell["deployed"]["files"][runtime],
                }
            )
    return points
