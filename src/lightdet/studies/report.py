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

from lightdet.deploy.runtimes import FILE_RUNTIMES, RUNTIMES, check_runtimes
from lightdet.studies.latency import SETTINGS, measure_in_subprocess
from lightdet.studies.plots import heatmap, speed_accuracy
from lightdet.studies.points import deploy_cell, runtime_points
from lightdet.studies.seeds import combine_seeds, verdict
from lightdet.studies.spec import read_result, write_json
from lightdet.studies.table import METRIC_TITLES, markdown, pareto_front, study_rows, write_csv
from lightdet.tracking import bounded

log = logging.getLogger(__name__)


class StudyReport(Callback):
    """Hydra callback: the study's report once every job has run."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        cells = cells_of_sweep(sweep)
        try:
            failed = report_study(
                config.study, cells, OmegaConf.select(config, "logger"), report_name=sweep.name
            )
        except Exception as err:  # Hydra turns a callback's exception into a warning, exit 0
            log.exception("study %s: the report failed", config.study.name)
            raise SystemExit(f"study {config.study.name}: the report failed: {err}") from err
        if failed:
            raise SystemExit(f"study {config.study.name}: {failed} cell(s) failed (see the table)")


def cells_of_sweep(sweep_dir: Path) -> list[dict]:
    """The results of this multirun's jobs, in job order (each job left ``cell.json``), a
    result per seed where the study repeats them."""
    pointers = sorted(
        sweep_dir.glob("*/cell.json"), key=lambda p: (len(p.parent.name), p.parent.name)
    )
    cells, seen = [], set()
    for pointer in pointers:
        written = json.loads(pointer.read_text())
        for folder in map(Path, written.get("folders") or [written["folder"]]):
            result = read_result(folder)
            if result is not None and str(folder) not in seen:
                seen.add(str(folder))
                cells.append(result)
    return cells


def by_cell(runs: list[dict], metrics: list[str], floor: dict) -> list[dict]:
    """The runs grouped by their cell's label (in order of first appearance), each group one
    cell: :func:`lightdet.studies.seeds.combine_seeds`."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["label"], []).append(run)
    return [combine_seeds(group, metrics, floor) for group in groups.values()]


def measure_speed(cell: dict, settings: dict) -> dict:
    """The cell's latency, parameters and memory in ``settings["runtime"]`` (PyTorch when not
    given): measured once per checkpoint and settings, reused from ``speed/result.json`` (a
    file runtime: ``speed-<runtime>/``) in its folder after that."""
    runtime = settings.get("runtime", "pytorch")
    where = "speed" if runtime == "pytorch" else f"speed-{runtime}"
    folder, checkpoint = Path(cell["folder"]), Path(cell["checkpoint"])
    stat = checkpoint.stat()
    stamp = {
        "checkpoint": str(checkpoint),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "settings": settings,
    }
    cached = read_result(folder / where)
    if cached and cached.get("stamp") == stamp:
        return cached["speed"]
    sizes = settings["batch_sizes"] if runtime == "pytorch" else [1]
    print(
        f"measuring {cell['label']} in {runtime} ({len(cell['images'])} images, batch sizes "
        f"{sizes}, {settings['repeats']} repeats)...",
        flush=True,
    )
    speed = measure_in_subprocess(str(checkpoint), cell["images"], settings, folder / where)
    write_json(folder / where / "result.json", {"stamp": stamp, "speed": speed})
    return speed


def report_study(
    study: DictConfig,
    cells: list[dict],
    logger_cfg: DictConfig | None,
    report_name: str | None = None,
) -> int:
    """Measure, tabulate, plot, print and record; returns the number of failed cells.

    ``cells``: every run (a cell's seeds are combined here). The report goes to
    ``<study.dir>/reports/<report_name>/`` (default: the time now), ``reports/latest``
    pointing at it; earlier reports stay."""
    metrics = [str(m) for m in study.metrics]
    floor = OmegaConf.to_container(study.trained_floor) if study.get("trained_floor") else {}
    cells = by_cell(cells, metrics, floor)
    latency = OmegaConf.to_container(study.latency)
    settings = {k: latency.get(k) for k in SETTINGS}
    runtimes = check_runtimes(latency.get("runtimes") or ["pytorch"], "study.latency.runtimes")
    for cell in cells:
        if cell.get("status") == "finished":
            _measure_cell(cell, settings, runtimes, int(latency.get("calibration_images") or 200))
    measured, cells = cells, runtime_points(cells, runtimes)
    batch_sizes = [int(b) for b in settings["batch_sizes"]]
    timed = [c for c in cells if _timed(c, batch_sizes[0]) and metrics[0] in c["metrics"]]
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
    out = new_report_folder(Path(study.dir), report_name)
    text, files = _write(out, study, measured, cells, header, rows, metrics, batch_sizes, paper)
    print(
        "\n" + text + "\nwritten to " + str(out) + ": " + ", ".join(p.name for p in files),
        flush=True,
    )
    link_latest(out)
    if logger_cfg is not None and logger_cfg.get("clearml") is not None:
        _record(study, logger_cfg, header, rows, cells, files, metrics, batch_sizes)
    return sum(c.get("status") != "finished" for c in cells)


def new_report_folder(study_dir: Path, name: str | None) -> Path:
    """``<study_dir>/reports/<name>`` (default: the time now), made; a name already used gets
    a suffix (``-2``...), so no earlier report is overwritten."""
    import time

    base = study_dir / "reports" / (name or time.strftime("%Y-%m-%d_%H-%M-%S"))
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder


def link_latest(folder: Path) -> None:
    """``reports/latest`` -> ``folder`` (relative). A ``latest`` lightdet did not make (not a
    link) is left alone, and said."""
    latest = folder.parent / "latest"
    if latest.exists() and not latest.is_symlink():
        print(f"{latest} is not a link lightdet made: left as it is", flush=True)
        return
    staged = folder.parent / f".latest-{folder.name}"
    staged.unlink(missing_ok=True)
    staged.symlink_to(folder.name, target_is_directory=True)
    staged.replace(latest)  # atomic: a reader sees the old report or the new one


def _measure_cell(cell: dict, settings: dict, runtimes: list[str], calibration: int) -> None:
    """Latency in every runtime asked for (the file runtimes' files made first), into
    ``cell["speeds"]``; the model's name, size and kind from whichever measured it."""
    files = [r for r in runtimes if r in FILE_RUNTIMES]
    if files:
        cell["deployed"] = deploy_cell(cell, files, calibration)
    cell["speeds"] = {}
    for runtime in runtimes:
        extra = {}
        if runtime in files:
            extra = {"runtime": runtime, "file": cell["deployed"]["files"][runtime]}
        cell["speeds"][runtime] = measure_speed(cell, {**settings, **extra})
    torch_speed = cell["speeds"].get("pytorch") or {}
    cell["speed"] = cell["speeds"].get("pytorch")  # the cell's own: PyTorch's, where asked
    cell["model"] = cell.get("model") or torch_speed.get("model")
    cell["backbone"] = cell.get("backbone") or torch_speed.get("backbone")
    cell["two_stage"] = torch_speed.get("two_stage", (cell.get("deployed") or {}).get("two_stage"))
    for runtime in files:  # the same network: its size is the PyTorch model's
        cell["speeds"][runtime]["params"] = torch_speed.get("params")


def _write(
    out: Path, study, measured, cells, header, rows, metrics, batch_sizes, paper
) -> tuple[str, list[Path]]:
    """The table's markdown and every file written; ``measured``: the cells, ``cells``: their
    points (a cell per runtime)."""
    title = f"study {study.name}: {_budget_text(study.budget)}"
    files = []
    plot = speed_accuracy(cells, metrics[0], batch_sizes[0], out / "speed_accuracy.png", title)
    files.append(plot)
    spec = study.get("heatmap")
    if spec:
        first = next((c.get("runtime") for c in cells if c.get("runtime")), None)
        found = heatmap(  # one value a cell: its first runtime's (the runtimes share settings)
            [c for c in cells if c.get("runtime") in (None, first)],
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
        out / "results.json",
        {
            "study": OmegaConf.to_container(study, resolve=True),
            "cells": measured,
            "points": cells,
        },
    )
    return text, [out / "table.md", out / "results.csv", out / "results.json", *files]


def _timed(cell: dict, batch_size: int) -> bool:
    """Whether the cell (one runtime of it) was timed at ``batch_size``."""
    return str(batch_size) in ((cell.get("speed") or {}).get("latency") or {})


def _budget_text(budget: DictConfig) -> str:
    parts = []
    if budget.get("epochs") is not None:
        parts.append(f"{budget.epochs} epoch{'s' if int(budget.epochs) != 1 else ''}")
    if budget.get("minutes") is not None:
        parts.append(f"{budget.minutes} min wall-clock")
    return " or ".join(parts) + " per cell" if parts else "no budget"


def _context(cells: list[dict]) -> list[str]:
    """How the latency was measured, from the first measured cell of each runtime."""
    speeds = {}
    for cell in cells:
        if cell.get("speed"):
            speeds.setdefault(cell.get("runtime") or "pytorch", cell["speed"])
    if not speeds:
        return ["No cell finished: nothing was measured."]
    speed = next(iter(speeds.values()))
    sizes = ", ".join("x".join(map(str, s)) for s in speed["image_sizes"])
    lines = [
        f"Latency on {speed['device']}: input images {sizes} (decoding excluded); warm-up runs "
        "excluded; median and 10th-90th percentile of the repeats, in ms per image. Peak MiB: "
        "what loading and running the model added to the measuring process's resident memory at "
        "its peak. Accuracy: COCO mAP on the validation split at the best epoch."
    ]
    if "pytorch" in speeds:
        torch_speed = speeds["pytorch"]
        lines.append(
            "- pytorch: `Detector.forward` (the model's transform, forward and postprocessing), "
            f"{torch_speed['threads']} torch threads, each model in the precision it was "
            f"validated in, torch {torch_speed['torch']}."
        )
    for runtime, file_speed in speeds.items():
        if runtime != "pytorch":
            lines.append(
                f"- {runtime}: {RUNTIMES[runtime]}, onnxruntime {file_speed['onnxruntime']}, "
                f"{file_speed['threads']} intra-op threads, batch 1 (the file takes one image); "
                "accuracy: the cell's plus the file's change against PyTorch on the whole val "
                "split (mAP, mAP50; other metrics not measured for files)."
            )
    return [lines[0], "", *lines[1:]] if len(lines) > 1 else lines


def _verdicts(study: DictConfig, cells: list[dict], metric: str, batch_size: int) -> list[str]:
    """The report's conclusions, each only as strong as the seeds allow
    (:mod:`lightdet.studies.seeds`): the most accurate against the next, the fastest, the
    Pareto front, the study's pairs; barely trained cells named with their reasons."""
    done = {
        c["label"]: c for c in cells if c.get("status") == "finished" and metric in c["metrics"]
    }
    if not done:
        return []
    title = METRIC_TITLES.get(metric, metric)
    ranked = sorted(done.values(), key=lambda c: -c["metrics"][metric])
    best = ranked[0]
    line = f"- Most accurate: **{best['label']}** ({title} {_value(best, metric)})."
    others = [c for c in ranked[1:] if c.get("cell", c["label"]) != best.get("cell", best["label"])]
    if others:
        line += " " + _against_next(best, others[0], metric)
    lines = [line + _caution(best)]
    timed = [c for c in done.values() if _timed(c, batch_size)]
    if timed:
        fastest = min(timed, key=lambda c: c["speed"]["latency"][str(batch_size)]["median_ms"])
        ms = fastest["speed"]["latency"][str(batch_size)]["median_ms"]
        lines.append(
            f"- Fastest: **{fastest['label']}** ({ms:.1f} ms per image at batch {batch_size})."
            + _caution(fastest)
        )
        front = [c["label"] for c in timed if c.get("pareto")]
        lines.append(
            f"- Pareto front (no other cell both faster and more accurate): {', '.join(front)}."
        )
    for a, b in study.get("verdicts") or []:
        if a in done and b in done:
            lines.append(_pair(done[a], done[b], metric, title))
    flagged = [c for c in done.values() if c.get("barely_trained")]
    if flagged:
        names = ", ".join(f"{c['label']} ({'; '.join(c['barely_trained'])})" for c in flagged)
        lines.append(
            f"- Barely trained at this budget (under study.trained_floor or the warm-up): "
            f"{names}: their numbers say more about the budget than about the model."
        )
    return lines


def _value(cell: dict, metric: str) -> str:
    """``0.4123``, or ``0.4123 ± 0.0110 (3 seeds)`` where the cell was repeated."""
    text = f"{cell['metrics'][metric]:.4f}"
    half = (cell.get("ci") or {}).get(metric)
    if half is not None:
        text += f" ± {half:.4f} ({len(cell['seed_values'][metric])} seeds, 95 % CI)"
    return text


def _seed_values(cell: dict, metric: str) -> list[float]:
    return (cell.get("seed_values") or {}).get(metric) or [cell["metrics"][metric]]


def _against_next(best: dict, runner: dict, metric: str) -> str:
    found = verdict(
        best["label"], runner["label"], _seed_values(best, metric), _seed_values(runner, metric)
    )
    if found["word"] == "untested":
        return f"Next: **{runner['label']}**; one seed each, so no test of the gap (study.seeds)."
    p = f"Welch's t-test p={found['p']:.2g}"
    if found["word"] == "beats":
        return f"It beats the next, **{runner['label']}** ({found['difference']:+.4f}; {p})."
    return (
        f"Not separable from the next, **{runner['label']}** ({found['difference']:+.4f}; {p}): "
        "no difference at this budget."
    )


def _pair(a: dict, b: dict, metric: str, title: str) -> str:
    found = verdict(a["label"], b["label"], _seed_values(a, metric), _seed_values(b, metric))
    figures = f"{_value(a, metric)} against {_value(b, metric)} ({found['difference']:+.4f})"
    names = f"**{a['label']}** against **{b['label']}** on {title}"
    if found["word"] == "untested":
        text = f"- {names}: {figures}; one seed each: no verdict (study.seeds=3 gives one)."
    elif found["word"] == "no difference at this budget":
        text = (
            f"- {names}: no difference at this budget: {figures}; "
            f"Welch's t-test p={found['p']:.2g}."
        )
    else:
        text = (
            f"- **{a['label']}** {found['word']} **{b['label']}** on {title}: {figures}; "
            f"Welch's t-test p={found['p']:.2g}."
        )
    return text + _caution(a) + _caution(b)


def _caution(cell: dict) -> str:
    """A barely trained cell's caution, or nothing."""
    if not cell.get("barely_trained"):
        return ""
    return f" Caution: {cell['label']} is barely trained (below)."


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
            if _timed(cell, batch_sizes[0]) and metrics[0] in cell["metrics"]:
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
