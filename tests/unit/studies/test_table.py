"""A study's table: rows, the Pareto front, failures shown."""

from __future__ import annotations

from lightdet.studies.table import markdown, pareto_front, study_rows


def test_pareto_front_keeps_what_nothing_beats_on_both_axes():
    # (ms per image, mAP)
    points = [(10, 0.30), (20, 0.50), (15, 0.25), (40, 0.50), (5, 0.10), (20, 0.50)]
    assert pareto_front(points) == [True, True, False, False, True, True]  # ties both stay


def _cell(label, map_, ms, **extra):
    speed = {
        "params": 2_500_000,
        "peak_mib": 300.0,
        "precision": "bf16-mixed",
        "threads": 2,
        "latency": {"1": {"median_ms": ms, "p10_ms": ms - 1, "p90_ms": ms + 2}},
    }
    return {
        "label": label,
        "model": "retinanet",
        "backbone": "resnet18",
        "status": "finished",
        "metrics": {"val/map": map_},
        "speed": speed,
        "train_seconds": 90,
        "epochs": 2,
        "task_id": f"id-{label}",
        **extra,
    }


def test_rows_hold_our_numbers_the_papers_and_failures():
    cells = [
        _cell("g2", 0.41234, 12.34, pareto=True),
        _cell("ce", 0.3, 11.0),
        {"label": "g5", "model": "retinanet", "status": "failed", "error": "ValueError: nan"},
    ]
    header, rows = study_rows(cells, ["val/map"], [1], paper={"g2": {"val/map": 34.0}})
    assert header == [
        "cell",
        "model",
        "backbone",
        "params (M)",
        "mAP",
        "paper mAP",
        "runtime",
        "precision",
        "threads",
        "ms/img b1 (p10-p90)",
        "peak MiB",
        "train min",
        "epochs",
        "seeds",
        "Pareto",
        "caution",
        "ClearML task",
    ]
    assert rows[0] == [
        "g2",
        "retinanet",
        "resnet18",
        "2.50",
        "0.4123",
        "34.0",
        "pytorch",
        "bf16-mixed",
        "2",
        "12.3 (11.3-14.3)",
        "300",
        "1.5",
        "2",
        "1",
        "yes",
        "",
        "id-g2",
    ]
    assert rows[1][5] == "-" and rows[1][14] == ""  # no paper number; not on the front
    assert rows[2][0] == "g5" and rows[2][-1] == "failed: ValueError: nan"
    assert len(rows[2]) == len(header)
    text = markdown(header, rows).splitlines()
    assert text[1] == "|" + "|".join(["---"] * len(header)) + "|"
    assert text[2].startswith("| g2 | retinanet | resnet18 | 2.50 | 0.4123 | 34.0 |")
