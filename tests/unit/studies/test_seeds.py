"""A study repeated over seeds: the means, the 95 % intervals, the verdicts a test supports
and the barely trained cells, on cells whose results are known."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from lightdet.studies.report import _verdicts, by_cell
from lightdet.studies.seeds import barely_trained, mean_interval, verdict, welch
from lightdet.studies.table import study_rows

# Student's t quantiles (0.975) for 2 and 3 degrees of freedom, from a printed table
T_2, T_3 = 4.302653, 3.182446


def _run(label: str, seed: int, value: float, epochs: int = 10, steps: int = 500) -> dict:
    return {
        "label": label,
        "seed": seed,
        "status": "finished",
        "metrics": {"val/map": value, "val/map_50": value + 0.2},
        "epochs": epochs,
        "steps": steps,
        "warmup_steps": 100,
        "train_seconds": 60.0,
        "folder": f"/cells/{label}-{seed}",
        "checkpoint": f"/cells/{label}-{seed}/best.ckpt",
    }


def test_mean_and_interval_by_hand():
    found = mean_interval([0.30, 0.32, 0.34])
    assert found["mean"] == pytest.approx(0.32) and found["sd"] == pytest.approx(0.02)
    assert found["half"] == pytest.approx(T_2 * 0.02 / math.sqrt(3), rel=1e-6)  # 0.04968
    four = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert four["half"] == pytest.approx(T_3 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert mean_interval([0.5]) == {"mean": 0.5, "sd": None, "n": 1, "half": None}


def test_welch_against_the_formula():
    a, b = [0.40, 0.41, 0.42], [0.30, 0.33, 0.36]
    # t = (0.41 - 0.33) / sqrt(0.01^2/3 + 0.03^2/3); Welch-Satterthwaite df = 2.439...
    va, vb = 0.0001 / 3, 0.0009 / 3
    t = 0.08 / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    from scipy import stats

    assert welch(a, b) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9)
    assert welch([0.4], b) is None
    assert welch([0.2, 0.2], [0.2, 0.2]) == 1.0 and welch([0.2, 0.2], [0.3, 0.3]) == 0.0


def test_verdicts_only_where_the_test_supports_them():
    assert verdict("a", "b", [0.40, 0.41, 0.42], [0.30, 0.31, 0.32])["word"] == "beats"
    assert verdict("b", "a", [0.30, 0.31, 0.32], [0.40, 0.41, 0.42])["word"] == "is beaten by"
    close = verdict("a", "c", [0.40, 0.41, 0.42], [0.36, 0.42, 0.45])
    assert close["word"] == "no difference at this budget" and close["p"] > 0.05
    one = verdict("a", "b", [0.41], [0.31])
    assert one["word"] == "untested" and one["difference"] == pytest.approx(0.10)


def test_barely_trained_names_each_reason():
    floor = {"epochs": 3, "metric": 0.05}
    assert barely_trained(_run("ok", 0, 0.3), floor, "val/map") == []
    why = barely_trained(_run("short", 0, 0.01, epochs=1, steps=40), floor, "val/map")
    assert why == ["1 epoch < 3", "val/map 0.0100 < 0.05", "40 steps < the 100-step warm-up"]
    assert barely_trained(_run("x", 0, 0.01), {"epochs": None, "metric": None}, "val/map") == []


def test_a_study_of_known_cells_over_three_seeds():
    """Three cells of three seeds each (one seed of c failed, one cell barely trained): the
    table's means and intervals, the verdicts, the cautions."""
    runs = [
        *(_run("g2", s, v) for s, v in zip((0, 1, 2), (0.40, 0.41, 0.42))),
        *(_run("g1", s, v) for s, v in zip((0, 1, 2), (0.36, 0.42, 0.45))),
        *(_run("ce", s, v, epochs=2) for s, v in zip((0, 1, 2), (0.30, 0.31, 0.32))),
        {**_run("g5", 0, 0.2), "status": "failed", "error": "nan"},
    ]
    runs.insert(4, {**_run("g1", 3, 0.0), "status": "failed", "error": "ValueError: nan"})
    floor = {"epochs": 3, "metric": 0.05}
    cells = by_cell(runs, ["val/map", "val/map_50"], floor)
    assert [c["label"] for c in cells] == ["g2", "g1", "ce", "g5"]
    g2, g1, ce, g5 = cells
    assert g2["metrics"]["val/map"] == pytest.approx(0.41)
    assert g2["ci"]["val/map"] == pytest.approx(T_2 * 0.01 / math.sqrt(3), rel=1e-6)
    assert g2["metrics"]["val/map_50"] == pytest.approx(0.61)
    assert g2["seeds"] == [0, 1, 2] and g2["checkpoint"] == "/cells/g2-0/best.ckpt"  # timed
    assert g1["failed_seeds"] == [3] and g1["seed_values"]["val/map"] == [0.36, 0.42, 0.45]
    assert ce["barely_trained"] == ["epochs < 3 (seeds 0, 1, 2)"]
    assert g5["status"] == "failed"

    header, rows = study_rows(cells, ["val/map"], [1])
    table = {row[0]: dict(zip(header, row)) for row in rows}
    assert table["g2"]["mAP"] == f"0.4100 ± {T_2 * 0.01 / math.sqrt(3):.4f}"
    assert table["g2"]["seeds"] == "3" and table["g1"]["seeds"] == "3"
    assert table["g1"]["caution"] == "failed seeds: 3"
    assert table["ce"]["caution"] == "barely trained: epochs < 3 (seeds 0, 1, 2)"

    study = OmegaConf.create({"verdicts": [["g2", "ce"], ["g2", "g1"]]})
    lines = _verdicts(study, cells, "val/map", 1)
    assert lines[0].startswith("- Most accurate: **g2** (mAP 0.4100 ± 0.0248 (3 seeds, 95 % CI)).")
    p_next = welch([0.40, 0.41, 0.42], [0.36, 0.42, 0.45])
    assert (
        f"Not separable from the next, **g1** (+0.0000; Welch's t-test p={p_next:.2g})"
        in (lines[0])
    )
    p_ce = welch([0.40, 0.41, 0.42], [0.30, 0.31, 0.32])
    assert p_ce < 0.05
    assert (
        f"- **g2** beats **ce** on mAP: 0.4100 ± 0.0248 (3 seeds, 95 % CI) against 0.3100 ± "
        f"0.0248 (3 seeds, 95 % CI) (+0.1000); Welch's t-test p={p_ce:.2g}. Caution: ce is "
        "barely trained (below)." in "\n".join(lines)
    )
    assert "- **g2** against **g1** on mAP: no difference at this budget" in "\n".join(lines)
    assert lines[-1] == (
        "- Barely trained at this budget (under study.trained_floor or the warm-up): ce (epochs "
        "< 3 (seeds 0, 1, 2)): their numbers say more about the budget than about the model."
    )


def test_one_seed_gives_no_verdict():
    cells = by_cell([_run("a", 0, 0.41), _run("b", 0, 0.31)], ["val/map"], {})
    study = OmegaConf.create({"verdicts": [["a", "b"]]})
    lines = _verdicts(study, cells, "val/map", 1)
    assert lines[0] == (
        "- Most accurate: **a** (mAP 0.4100). Next: **b**; one seed each, so no test of the gap "
        "(study.seeds)."
    )
    assert lines[1] == (
        "- **a** against **b** on mAP: 0.4100 against 0.3100 (+0.1000); one seed each: no "
        "verdict (study.seeds=3 gives one)."
    )
