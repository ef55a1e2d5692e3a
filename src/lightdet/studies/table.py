"""A study's results as rows: the markdown table, the CSV and the Pareto front of accuracy
against latency."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

# headline metrics: (key in the results, column title)
METRIC_TITLES = {
    "val/map": "mAP",
    "val/map_50": "mAP50",
    "val/map_75": "mAP75",
    "val/map_small": "mAP small",
    "val/map_medium": "mAP medium",
    "val/map_large": "mAP large",
}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Per point ``(milliseconds, accuracy)``: True when no other point is at least as fast
    and at least as accurate, and strictly better in one."""
    front = []
    for i, (ms, acc) in enumerate(points):
        dominated = any(
            o_ms <= ms and o_acc >= acc and (o_ms < ms or o_acc > acc)
            for j, (o_ms, o_acc) in enumerate(points)
            if j != i
        )
        front.append(not dominated)
    return front


def _fmt(value, digits: int = 4) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def study_rows(
    cells: list[dict], metrics: Sequence[str], batch_sizes: Sequence[int], paper: dict | None = None
) -> tuple[list[str], list[list]]:
    """Header and one row per cell (per cell and runtime:
    :func:`lightdet.studies.points.runtime_points`): name, model, parameters, the metrics
    (``mean ± 95 % interval`` over seeds where repeated; the paper's numbers beside ours where
    the study gives them), runtime, precision and threads, milliseconds per image per batch
    size (``-`` where the runtime runs one image at a time), peak memory, training time, epochs,
    seeds, Pareto membership, cautions (barely trained, failed seeds) and the ClearML task."""
    paper = paper or {}
    paper_keys = [m for m in metrics if any(m in (paper.get(c["label"]) or {}) for c in cells)]
    header = ["cell", "model", "backbone", "params (M)"]
    header += [METRIC_TITLES.get(m, m) for m in metrics]
    header += [f"paper {METRIC_TITLES.get(m, m)}" for m in paper_keys]
    header += ["runtime", "precision", "threads"]
    header += [f"ms/img b{bs} (p10-p90)" for bs in batch_sizes]
    header += ["peak MiB", "train min", "epochs", "seeds", "Pareto", "caution", "ClearML task"]
    rows = []
    for cell in cells:
        if cell.get("status") != "finished":
            rows.append(
                [
                    cell["label"],
                    cell.get("model") or "-",
                    "-",
                    "-",
                    *["-"] * (len(metrics) + len(paper_keys) + 3 + len(batch_sizes)),
                    "-",
                    "-",
                    "-",
                    "-",
                    "",
                    "",
                    f"failed: {cell.get('error', '?')}"[:80],
                ]
            )
            continue
        speed = cell.get("speed") or {}
        row = [
            cell["label"],
            cell.get("model") or "-",
            cell.get("backbone") or "-",
            _fmt(speed["params"] / 1e6, 2) if speed.get("params") else "-",
        ]
        row += [_metric(cell, m) for m in metrics]
        row += [_fmt((paper.get(cell["label"]) or {}).get(m), 1) for m in paper_keys]
        row += [cell.get("runtime") or "pytorch", speed.get("precision", "-")]
        row.append(_fmt(speed.get("threads")))
        for bs in batch_sizes:
            t = (speed.get("latency") or {}).get(str(bs))  # an ONNX file: batch 1 only
            row.append(f"{t['median_ms']:.1f} ({t['p10_ms']:.1f}-{t['p90_ms']:.1f})" if t else "-")
        row += [
            _fmt(speed.get("peak_mib"), 0) if speed else "-",
            _fmt(cell.get("train_seconds", 0) / 60, 1) if cell.get("train_seconds") else "-",
            _fmt(cell.get("epochs"), 1 if isinstance(cell.get("epochs"), float) else 4),
            _fmt(len(cell.get("seeds") or [None])),
            "yes" if cell.get("pareto") else "",
            _flags(cell),
            cell.get("task_id") or "-",
        ]
        rows.append(row)
    return header, rows


def _metric(cell: dict, metric: str) -> str:
    """The value, ``mean ± half-width`` of its 95 % interval where seeds were repeated."""
    value = _fmt(cell["metrics"].get(metric))
    half = (cell.get("ci") or {}).get(metric)
    return value if half is None else f"{value} ± {half:.4f}"


def _flags(cell: dict) -> str:
    """What to be careful about: barely trained, seeds that failed."""
    flags = []
    if cell.get("barely_trained"):
        flags.append("barely trained: " + "; ".join(cell["barely_trained"]))
    if cell.get("failed_seeds"):
        flags.append(f"failed seeds: {', '.join(map(str, cell['failed_seeds']))}")
    return "; ".join(flags)


def markdown(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
