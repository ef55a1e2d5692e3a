"""The gate a quantised file passes before it is deployed: its validation mAP against the
float model's.

A quantised file cannot give PyTorch's detections to the last bit (that is what quantisation
trades), so the float file's check (same detections, same mAP) does not apply to it. What
matters to its user is what it costs: the change of COCO mAP (0.5:0.95) on the validation
split, PyTorch float32 against the file, from the same evaluation code. Past ``max_map_drop``
the file fails; mAP50's change is reported beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

# what the gate compares: the primary metric; the others are reported
GATED = "map"


def map_gate(coco: Mapping[str, tuple[float, float]], max_map_drop: float) -> dict:
    """The gate's verdict from ``{metric: (pytorch, file)}`` (:class:`Verification.coco`).

    Returns ``{"metric", "max_map_drop", "pytorch": {...}, "file": {...}, "change": {...},
    "passed"}``; ``change`` is file minus PyTorch (negative: the file lost accuracy).

    Raises:
        ValueError: no mAP was measured (the validation split had no targets).
    """
    if GATED not in coco:
        raise ValueError("the gate needs the validation split's mAP; none was measured")
    change = {k: float(b) - float(a) for k, (a, b) in coco.items()}
    return {
        "metric": GATED,
        "max_map_drop": float(max_map_drop),
        "pytorch": {k: float(a) for k, (a, _) in coco.items()},
        "file": {k: float(b) for k, (_, b) in coco.items()},
        "change": change,
        # a hair of float slack: a drop of exactly max_map_drop passes
        "passed": -change[GATED] <= float(max_map_drop) + 1e-12,
    }


def gate_lines(gate: dict, what: str) -> list[str]:
    """The gate as the export's summary says it: the figures, then PASSED or FAILED."""
    lines = [
        f"  val {k}: PyTorch float32 {gate['pytorch'][k]:.4f}, {what} {gate['file'][k]:.4f} "
        f"(change {gate['change'][k]:+.4f})"
        for k in gate["change"]
    ]
    drop = -gate["change"][gate["metric"]]
    if gate["passed"]:
        lines.append(
            f"PASSED the gate: val {gate['metric']} lost {max(drop, 0.0):.4f} "
            f"(allowed: {gate['max_map_drop']:g}, max_map_drop)"
        )
    else:
        lines.append(
            f"FAILED the gate: val {gate['metric']} lost {drop:.4f}, more than "
            f"max_map_drop={gate['max_map_drop']:g}"
        )
    return lines
