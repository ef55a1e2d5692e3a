"""How sure a study is: a cell trained with several seeds (``study.seeds``) summarised as the
mean and a 95 % confidence interval per metric, verdicts between cells only where a test
supports them, and cells too briefly trained to judge flagged.

- Interval: Student's t, mean ± t(0.975, n-1) · s / sqrt(n) over the cell's seeds (s: the
  sample standard deviation); none with one seed.
- Verdict "a beats b": Welch's two-sample t-test (unequal variances) on the seeds' values,
  two-sided, p < 0.05, and a's mean above b's. Otherwise "no difference at this budget" with
  the p-value; with one seed on either side no test is possible, and the verdict says so
  instead of ranking two draws.
- Barely trained: fewer epochs than ``study.trained_floor.epochs``, a first metric under
  ``study.trained_floor.metric``, or fewer optimiser steps than the configured warm-up (the
  schedule had to shrink its warm-up to fit). Such a cell's numbers say more about the budget
  than about the model; the table and the verdicts say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ALPHA = 0.05  # the confidence interval is 1 - ALPHA, the test's level ALPHA


def mean_interval(values: Sequence[float]) -> dict:
    """``{"mean", "sd", "n", "half"}``: the mean, sample standard deviation, count and the
    half-width of the 95 % t interval (``sd`` and ``half`` None for one value)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("no value to summarise")
    mean = math.fsum(values) / n
    if n == 1:
        return {"mean": mean, "sd": None, "n": 1, "half": None}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "n": n, "half": half}


def welch(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Welch's two-sided p-value for a difference of means; None when either side has one
    value. Equal constant samples: 1.0 when their means are equal, else 0.0."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):  # no spread: the t statistic is undefined
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def verdict(a: str, b: str, values_a: Sequence[float], values_b: Sequence[float]) -> dict:
    """What the study may say about ``a`` against ``b`` on one metric: ``{"word", "p",
    "difference"}``; ``word`` is "beats", "is beaten by", "no difference at this budget" or
    "untested" (one seed on a side)."""
    difference = math.fsum(values_a) / len(values_a) - math.fsum(values_b) / len(values_b)
    p = welch(values_a, values_b)
    if p is None:
        word = "untested"
    elif p < ALPHA:
        word = "beats" if difference > 0 else "is beaten by"
    else:
        word = "no difference at this budget"
    return {"word": word, "p": p, "difference": difference}


def barely_trained(run: dict, floor: dict, metric: str, values: bool = True) -> list[str]:
    """Why a run is too briefly trained to judge (empty: it is not): its epochs, first metric
    and steps against ``floor`` (``epochs``, ``metric``) and its configured warm-up; with
    ``values=False`` without the run's own figures (the same words for every seed)."""
    why = []
    epochs, minimum = run.get("epochs"), floor.get("epochs")
    if epochs is not None and minimum is not None and int(epochs) < int(minimum):
        count = f"{epochs} epoch{'s' if int(epochs) != 1 else ''}" if values else "epochs"
        why.append(f"{count} < {minimum}")
    value, lowest = (run.get("metrics") or {}).get(metric), floor.get("metric")
    if value is not None and lowest is not None and float(value) < float(lowest):
        why.append(
            f"{metric} {float(value):.4f} < {float(lowest):g}"
            if values
            else f"{metric} < {float(lowest):g}"
        )
    steps, warmup = run.get("steps"), run.get("warmup_steps")
    if steps is not None and warmup and int(steps) < int(warmup):
        why.append(f"{f'{steps} steps' if values else 'steps'} < the {warmup}-step warm-up")
    return why


def combine_seeds(runs: list[dict], metrics: Sequence[str], floor: dict) -> dict:
    """One cell from its seeds' runs (each a cell result, the same label): the first finished
    run's fields (its checkpoint is the one timed: latency does not depend on the seed),
    ``metrics`` the means over the finished runs, ``ci`` the half-widths, ``seed_values`` the
    per-seed values, ``seeds``, ``failed_seeds``, and ``barely_trained`` (reasons, any seed's).
    A cell with no finished run is the first run, as it failed."""
    done = [r for r in runs if r.get("status") == "finished"]
    if not done:
        return runs[0]
    cell = dict(done[0])
    values = {m: [float(r["metrics"][m]) for r in done if m in r["metrics"]] for m in metrics}
    summaries = {m: mean_interval(v) for m, v in values.items() if v}
    cell["metrics"] = {**done[0]["metrics"], **{m: s["mean"] for m, s in summaries.items()}}
    cell["ci"] = {m: s["half"] for m, s in summaries.items() if s["half"] is not None}
    cell["sd"] = {m: s["sd"] for m, s in summaries.items() if s["sd"] is not None}
    cell["seed_values"] = values
    cell["seeds"] = [r.get("seed") for r in done]
    cell["failed_seeds"] = [r.get("seed") for r in runs if r.get("status") != "finished"]
    if len(done) == 1:
        cell["barely_trained"] = barely_trained(done[0], floor, metrics[0])
    else:  # each reason once, with the seeds it holds for
        seeds: dict[str, list] = {}
        for run in done:
            for why in barely_trained(run, floor, metrics[0], values=False):
                seeds.setdefault(why, []).append(run.get("seed"))
        cell["barely_trained"] = [
            f"{why} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})"
            for why, s in seeds.items()
        ]
    for key in ("train_seconds", "epochs"):  # means over the seeds (epochs: whole if all equal)
        found = [float(r[key]) for r in done if r.get(key) is not None]
        mean = math.fsum(found) / len(found) if found else None
        cell[key] = int(mean) if key == "epochs" and found and len(set(found)) == 1 else mean
    return cell
