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


def speed_accuracy(cells: list[dict], metric: str, batch_size: int, path: Path, title: str) -> Path:
    """Scatter of ``metric`` against milliseconds per image at ``batch_size`` (one point per
    finished cell, labelled), the Pareto front joined and marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    points = [
        (c["speed"]["latency"][str(batch_size)]["median_ms"], c["metrics"][metric], c)
        for c in cells
        if c.get("status") == "finished" and c.get("speed") and metric in c["metrics"]
    ]
    for ms, value, cell in points:
        on_front = cell.get("pareto")
        ax.scatter(
            [ms],
            [value],
            s=70 if on_front else 45,
            zorder=3,
            marker="o" if on_front else "x",
            color="C3" if on_front else "C0",
        )
        ax.annotate(
            cell["label"], (ms, value), textcoords="offset points", xytext=(6, 5), fontsize=9
        )
    front = sorted((ms, v) for ms, v, c in points if c.get("pareto"))
    if len(front) > 1:
        ax.plot(*zip(*front), color="C3", linestyle="--", linewidth=1, label="Pareto front")
        ax.legend(loc="lower right")
    ax.set_xlabel(f"milliseconds per image (batch {batch_size}, median)")
    ax.set_ylabel(METRIC_TITLES.get(metric, metric) + " (val)")
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
