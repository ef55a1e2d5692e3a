"""A study's pictures: accuracy against latency with the Pareto front, and a heat map of a
metric over two swept settings."""

from __future__ import annotations

from pathlib import Path

from lightdet.studies.table import METRIC_TITLES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# a runtime's colour on the plot (unknown ones: grey)
RUNTIME_COLOURS = {"pytorch": "C0", "onnx-fp32": "C1", "onnx-int8": "C2"}


def speed_accuracy(cells: list[dict], metric: str, batch_size: int, path: Path, title: str) -> Path:
    """Scatter of ``metric`` against milliseconds per image at ``batch_size``: one point per
    finished cell and runtime, labelled; colour: the runtime; marker: one-stage (circle) or
    two-stage (square) detector; horizontal bars: the 10th-90th percentile of the latency;
    vertical bars: the metric's 95 % confidence interval over seeds (where the study repeats
    them, ``cell["ci"]``); a thin line joins one model's runtimes; the Pareto front is ringed
    and joined."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5.5))
    points = [
        (c["speed"]["latency"][str(batch_size)], c["metrics"][metric], c)
        for c in cells
        if c.get("status") == "finished"
        and str(batch_size) in ((c.get("speed") or {}).get("latency") or {})
        and metric in c["metrics"]
    ]
    by_model: dict[str, list[tuple[float, float]]] = {}
    for timing, value, cell in points:
        model = cell.get("cell", cell["label"])
        by_model.setdefault(model, []).append((timing["median_ms"], value))
    for line in by_model.values():
        if len(line) > 1:
            ax.plot(*zip(*sorted(line)), color="0.75", linewidth=0.8, zorder=1)
    for timing, value, cell in points:
        ms = timing["median_ms"]
        colour = RUNTIME_COLOURS.get(cell.get("runtime") or "pytorch", "0.5")
        half = (cell.get("ci") or {}).get(metric)
        ax.errorbar(
            [ms],
            [value],
            xerr=[[ms - timing.get("p10_ms", ms)], [timing.get("p90_ms", ms) - ms]],
            yerr=None if half is None else [[half], [half]],
            fmt="s" if cell.get("two_stage") else "o",
            color=colour,
            markersize=9 if cell.get("pareto") else 7,
            markeredgecolor="black" if cell.get("pareto") else colour,
            markeredgewidth=1.6 if cell.get("pareto") else 1.0,
            elinewidth=1,
            capsize=2,
            zorder=3,
        )
        ax.annotate(
            cell["label"], (ms, value), textcoords="offset points", xytext=(6, 5), fontsize=8
        )
    front = sorted((t["median_ms"], v) for t, v, c in points if c.get("pareto"))
    handles = []
    if len(front) > 1:
        ax.plot(*zip(*front), color="black", linestyle="--", linewidth=0.8, zorder=2)
        handles.append(Line2D([], [], color="black", linestyle="--", label="Pareto front"))
    for runtime in dict.fromkeys(c.get("runtime") or "pytorch" for _, _, c in points):
        colour = RUNTIME_COLOURS.get(runtime, "0.5")
        handles.append(Line2D([], [], color=colour, marker="o", linestyle="", label=runtime))
    for two_stage in sorted({bool(c.get("two_stage")) for _, _, c in points}):
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                marker="s" if two_stage else "o",
                linestyle="",
                markerfacecolor="none",
                label="two-stage" if two_stage else "one-stage",
            )
        )
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_xlabel(f"milliseconds per image (batch {batch_size}; median, bars 10th-90th percentile)")
    ylabel = METRIC_TITLES.get(metric, metric) + " (val)"
    if any((c.get("ci") or {}).get(metric) is not None for _, _, c in points):
        ylabel += ", bars: 95 % CI over seeds"
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sorted_values(values: set[str]) -> list[str]:
    def key(v: str):
        try:
            return (0, float(v), v)
        except ValueError:
            return (1, 0.0, v)

    return sorted(values, key=key)


def heatmap(
    cells: list[dict],
    x: str,
    y: str,
    metric: str,
    path: Path,
    title: str,
    paper: dict | None = None,
) -> Path | None:
    """``metric`` of each finished cell at (its value of setting ``x``, of setting ``y``), the
    paper's number under ours where the study gives it. None when no cell sets both."""
    plt = _pyplot()
    import numpy as np

    placed = [
        (c["settings"].get(x), c["settings"].get(y), c)
        for c in cells
        if c.get("status") == "finished" and metric in c.get("metrics", {})
    ]
    placed = [(str(a), str(b), c) for a, b, c in placed if a is not None and b is not None]
    if not placed:
        return None
    xs, ys = _sorted_values({a for a, _, _ in placed}), _sorted_values({b for _, b, _ in placed})
    grid = np.full((len(ys), len(xs)), np.nan)
    for a, b, c in placed:
        grid[ys.index(b), xs.index(a)] = c["metrics"][metric]
    fig, ax = plt.subplots(figsize=(1.3 * len(xs) + 2.5, 0.9 * len(ys) + 1.8))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=METRIC_TITLES.get(metric, metric))
    for a, b, c in placed:
        text = f"{c['metrics'][metric]:.3f}"
        reference = ((paper or {}).get(c["label"]) or {}).get(metric)
        if reference is not None:
            text += f"\npaper {reference}"
        bright = image.norm(c["metrics"][metric]) > 0.6  # viridis turns yellow: dark text
        ax.text(
            xs.index(a),
            ys.index(b),
            text,
            ha="center",
            va="center",
            fontsize=8,
            color="black" if bright else "white",
        )
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
