"""The pictures of an evaluation and of a training run, as PNG files (matplotlib, no display).

Each function writes one figure and returns its path; matplotlib is imported on use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, whatever display the machine has
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str
) -> Path:
    """Precision against recall, one line per class (name -> (recall, precision))."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    _finish(ax, "recall", "precision", title, bool(curves))
    return _save(plt, fig, path)


def plot_f1_curves(
    thresholds: np.ndarray, curves: Mapping[str, np.ndarray], best: Mapping, path: Path
) -> Path:
    """F1 against the score threshold, per class and for all classes (thick), the best marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, f1 in curves.items():
        ax.plot(thresholds, f1, label=name, linewidth=3 if name == "all classes" else 1)
    if best.get("threshold") is not None:
        ax.axvline(best["threshold"], color="grey", linestyle="--")
        ax.annotate(
            f"F1 {best['f1']:.3f} at {best['threshold']:.3f}",
            (best["threshold"], best["f1"]),
            textcoords="offset points",
            xytext=(5, 5),
        )
    _finish(ax, "score threshold", "F1 (IoU 0.5)", "F1 against confidence", bool(curves))
    return _save(plt, fig, path)


def plot_confusion(
    matrix: np.ndarray, labels: Sequence[str], path: Path, normalize: bool, title: str
) -> Path:
    """Rows: true class, columns: predicted class; ``normalize``: each row sums to 1."""
    plt = _pyplot()
    values = matrix.astype(np.float64)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), v in np.ndenumerate(values):
        text = f"{v:.2f}" if normalize else str(int(v))
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            color="white" if v > values.max() / 2 else "black",
            fontsize=8,
        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(plt, fig, path)


def plot_training_curves(
    history: Mapping[str, Sequence[tuple[int, float]]], path: Path, x: str = "epoch"
) -> Path:
    """One panel per metric: ``{name: [(x, value), ...]}`` (losses, lr, val mAP...), ``x`` the
    epoch or the optimizer step (markers only where the points are few enough to see)."""
    plt = _pyplot()
    names = sorted(
        (n for n, points in history.items() if points),
        key=lambda n: (not n.startswith("train/"), n),
    )  # losses first, then val
    columns = min(4, max(len(names), 1))
    rows = -(-max(len(names), 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.9 * rows), squeeze=False)
    last = max((p[0] for n in names for p in history[n]), default=0)
    for ax, name in zip(axes.flat, names):
        xs, values = zip(*history[name])
        if x == "step":  # one step axis for all: a single validation sits where it ran
            ax.set_xlim(0, max(last, 1) * 1.03)
        ax.plot(xs, values, marker="o" if len(xs) <= 60 else None, markersize=3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(x)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(plt, fig, path)


def plot_errors(
    dap50: Mapping[str, float], dap: Mapping[str, float], names: Mapping[str, str], path: Path
) -> Path:
    """TIDE's breakdown: the AP each kind of error costs, at IoU 0.5 and over 0.5:0.95."""
    plt = _pyplot()
    kinds = list(dap50)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(kinds))
    ax.bar(x - 0.2, [dap50[k] for k in kinds], 0.4, label="IoU 0.5")
    ax.bar(x + 0.2, [dap[k] for k in kinds], 0.4, label="IoU 0.5:0.95")
    short = {"FP": "all false\npositives", "FN": "all false\nnegatives"}
    ax.set_xticks(x, [f"{k}\n{short.get(k, names.get(k, k))}" for k in kinds], fontsize=7)
    ax.set_ylabel("AP gained if fixed (dAP)")
    ax.set_title("what the errors cost (TIDE)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_box_sides(
    missed: np.ndarray, found: np.ndarray, anchors: Sequence[float], path: Path, title: str
) -> Path:
    """How big the missed boxes are against the found ones (sqrt of the area, log bins), with
    the model's anchor sides marked where known."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    sides = np.concatenate([missed, found, np.asarray(anchors, float)])
    sides = sides[sides > 0]
    low, high = (sides.min(), sides.max()) if sides.size else (1.0, 2.0)
    bins = np.geomspace(max(low * 0.9, 0.5), high * 1.1 + 1, 30)
    ax.hist([found, missed], bins=bins, label=["found", "missed"], color=["tab:green", "tab:red"])
    for i, side in enumerate(anchors):
        ax.axvline(side, color="grey", linestyle="--", label="anchor sides" if i == 0 else None)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks([t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000) if low <= t <= high])
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 100, not 10^2
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("box side, sqrt(area) in pixels")
    ax.set_ylabel("ground-truth boxes")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _finish(ax, xlabel: str, ylabel: str, title: str, legend: bool) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(loc="lower left", fontsize=8)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
