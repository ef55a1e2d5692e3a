"""The report at the end of a study: latency of every finished cell, then the table, the
speed/accuracy plot (and a heat map when the study asks for one) in the study folder and in
one ClearML task that links each cell's training task.

Hydra calls :class:`StudyReport` after the last job of the multirun (``hydra.callbacks`` in
``conf/study.yaml``), in the process that launched them, whatever the launcher.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lightdet.studies.latency import SETTINGS, measure_in_subprocess
from lightdet.studies.plots import heatmap, speed_accuracy
from lightdet.studies.spec import read_result, write_json
from lightdet.studies.table import METRIC_TITLES, markdown, pareto_front, study_rows, write_csv
from lightdet.tracking import bounded

log = logging.getLogger(__name__)


class StudyReport(Callback):
    """Hydra callback: the study's report once every job has run."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        cells = cells_of_sweep(Path(config.hydra.sweep.dir))
        try:
            failed = report_study(config.study, cells, OmegaConf.select(config, "logger"))
        except Exception as err:  # Hydra turns a callback's exception into a warning, exit 0
            log.exception("study %s: the report failed", config.study.name)
            raise SystemExit(f"study {config.study.name}: the report failed: {err}") from err
        if failed:
            raise SystemExit(f"study {config.study.name}: {failed} cell(s) failed (see the table)")


def cells_of_sweep(sweep_dir: Path) -> list[dict]:
    """The results of this multirun's jobs, in job order (each job left ``cell.json``)."""
    pointers = sorted(
        sweep_dir.glob("*/cell.json"), key=lambda p: (len(p.parent.name), p.parent.name)
    )
    cells, seen = [], set()
    for pointer in pointers:
        folder = Path(json.loads(pointer.read_text())["folder"])
        result = read_result(folder)
        if result is not None and str(folder) not in seen:
            seen.add(str(folder))
            cells.append(result)
    return cells


def measure_speed(cell: dict, settings: dict) -> dict:
    """The cell's latency, parameters and memory: measured once per checkpoint and settings,
    reused from ``speed.json`` in its folder after that."""
    folder, checkpoint = Path(cell["folder"]), Path(cell["checkpoint"])
    stat = checkpoint.stat()
    stamp = {
        "checkpoint": str(checkpoint),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "settings": settings,
    }
    cached = read_result(folder / "speed")
    if cached and cached.get("stamp") == stamp:
        return cached["speed"]
    print(
        f"measuring {cell['label']} ({len(cell['images'])} images, batch sizes "
        f"{settings['batch_sizes']}, {settings['repeats']} repeats)...",
        flush=True,
    )
    speed = measure_in_subprocess(str(checkpoint), cell["images"], settings, folder / "speed")
    write_json(folder / "speed" / "result.json", {"stamp": stamp, "speed": speed})
    return speed


def report_study(study: DictConfig, cells: list[dict], logger_cfg: DictConfig | None) -> int:
    """Measure, tabulate, plot, print and record; returns the number of failed cells."""
    settings = {k: OmegaConf.to_container(study.latency).get(k) for k in SETTINGS}
    for cell in cells:
        if cell.get("status") == "finished":
            cell["speed"] = measure_speed(cell, settings)
            cell["model"] = cell.get("model") or cell["speed"].get("model")
            cell["backbone"] = cell.get("backbone") or cell["speed"].get("backbone")
    metrics = [str(m) for m in study.metrics]
    batch_sizes = [int(b) for b in settings["batch_sizes"]]
    timed = [c for c in cells if c.get("speed") and metrics[0] in c["metrics"]]
    front = pareto_front(
        [
            (c["speed"]["latency"][str(batch_sizes[0])]["median_ms"], c["metrics"][metrics[0]])
            for c in timed
        ]
    )
    for cell, on_front in zip(timed, front):
        cell["pareto"] = on_front
    paper = OmegaConf.to_container(study.paper) if study.get("paper") else {}
    header, rows = study_rows(cells, metrics, batch_sizes, paper)
    out = Path(study.dir)
    out.mkdir(parents=True, exist_ok=True)
    text, files = _write(out, study, cells, header, rows, metrics, batch_sizes, paper)
    print(
        "\n" + text + "\nwritten to " + str(out) + ": " + ", ".join(p.name for p in files),
        flush=True,
    )
    if logger_cfg is not None and logger_cfg.get("clearml") is not None:
        _record(study, logger_cfg, header, rows, cells, files, metrics, batch_sizes)
    return sum(c.get("status") != "finished" for c in cells)


def _write(
    out: Path, study, cells, header, rows, metrics, batch_sizes, paper
) -> tuple[str, list[Path]]:
    """The table's markdown and every file written."""
    title = f"study {study.name}: {_budget_text(study.budget)}"
    files = []
    plot = speed_accuracy(cells, metrics[0], batch_sizes[0], out / "speed_accuracy.png", title)
    files.append(plot)
    spec = study.get("heatmap")
    if spec:
        found = heatmap(
            cells,
            spec.x,
            spec.y,
            spec.get("metric") or metrics[0],
            out / "heatmap.png",
            title,
            paper,
        )
        files += [found] if found else []
    note = [str(study.paper_note), ""] if study.get("paper_note") else []
    lines = [
        f"# {title}",
        "",
        *_context(cells),
        "",
        *note,
        markdown(header, rows),
        "",
        *_verdicts(study, cells, metrics[0], batch_sizes[0]),
    ]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    write_csv(out / "results.csv", header, rows)
    write_json(
        out / "results.json", {"study": OmegaConf.to_container(study, resolve=True), "cells": cells}
    )
    return text, [out / "table.md", out / "results.csv", out / "results.json", *files]


def _budget_text(budget: DictConfig) -> str:
    parts = []
    if budget.get("epochs") is not None:
        parts.append(f"{budget.epochs} epoch{'s' if int(budget.epochs) != 1 else ''}")
    if budget.get("minutes") is not None:
        parts.append(f"{budget.minutes} min wall-clock")
    return " or ".join(parts) + " per cell" if parts else "no budget"


def _context(cells: list[dict]) -> list[str]:
    """How the latency was measured, from the first measured cell."""
    speed = next((c["speed"] for c in cells if c.get("speed")), None)
    if speed is None:
        return ["No cell finished: nothing was measured."]
    sizes = ", ".join("x".join(map(str, s)) for s in speed["image_sizes"])
    return [
        "Latency: `Detector.forward` (the model's transform, forward and postprocessing; image "
        f"decoding excluded) on {speed['device']}, {speed['threads']} torch threads, each model "
        f"in the precision it was validated in, torch {speed['torch']}; input images {sizes}; "
        "warm-up runs "
        "excluded; median and 10th-90th percentile of the repeats, in ms per image. Peak MiB: "
        "what loading and running the model added to the measuring process's resident memory at "
        "its peak. Accuracy: COCO mAP on the validation split at the best epoch."
    ]


def _verdicts(study: DictConfig, cells: list[dict], metric: str, batch_size: int) -> list[str]:
    done = {
        c["label"]: c for c in cells if c.get("status") == "finished" and metric in c["metrics"]
    }
    if not done:
        return []
    title = METRIC_TITLES.get(metric, metric)
    best = max(done.values(), key=lambda c: c["metrics"][metric])
    lines = [f"- Most accurate: **{best['label']}** ({title} {best['metrics'][metric]:.4f})."]
    timed = [c for c in done.values() if c.get("speed")]
    if timed:
        fastest = min(timed, key=lambda c: c["speed"]["latency"][str(batch_size)]["median_ms"])
        ms = fastest["speed"]["latency"][str(batch_size)]["median_ms"]
        lines.append(
            f"- Fastest: **{fastest['label']}** ({ms:.1f} ms per image at batch {batch_size})."
        )
        front = [c["label"] for c in timed if c.get("pareto")]
        lines.append(
            f"- Pareto front (no other cell both faster and more accurate): {', '.join(front)}."
        )
    for a, b in study.get("verdicts") or []:
        if a in done and b in done:
            va, vb = done[a]["metrics"][metric], done[b]["metrics"][metric]
            word = "beats" if va > vb else "does not beat"
            lines.append(
                f"- **{a}** {word} **{b}** on {title}: {va:.4f} against {vb:.4f} ({va - vb:+.4f})."
            )
    return lines


def _record(study, logger_cfg, header, rows, cells, files, metrics, batch_sizes) -> None:
    """One ClearML task for the study: the table, the scatter (interactive), the pictures, and
    each cell's training task id as a user property."""
    from lightdet.tracking.task import clearml_task

    cfg = OmegaConf.create(
        {
            "task_name": f"study-{study.name}",
            "seed": 0,
            "logger": OmegaConf.to_container(logger_cfg),
            "study": OmegaConf.to_container(study, resolve=True),
        }
    )
    cfg.logger.clearml.task_name = f"study-{study.name}"
    with clearml_task(cfg, bind_hydra=False) as task:
        logger = task.get_logger()
        logger.report_table("study", "cells", iteration=0, table_plot=[header, *rows])
        for cell in cells:
            if cell.get("speed") and metrics[0] in cell["metrics"]:
                ms = cell["speed"]["latency"][str(batch_sizes[0])]["median_ms"]
                logger.report_scatter2d(
                    "speed vs accuracy",
                    cell["label"],
                    scatter=[[ms, cell["metrics"][metrics[0]]]],
                    iteration=0,
                    xaxis=f"ms per image (batch {batch_sizes[0]})",
                    yaxis=metrics[0],
                    mode="markers",
                    labels=[cell["label"]],
                )
        for path in files:
            if path.suffix == ".png":
                logger.report_image("study", path.stem, iteration=0, local_path=str(path))
        links = {f"task {c['label']}": c["task_id"] for c in cells if c.get("task_id")}
        if links:
            bounded.send(task, "linking the cells' tasks", task.set_user_properties, **links)
        print(f"ClearML: study task {task.id}", flush=True)
