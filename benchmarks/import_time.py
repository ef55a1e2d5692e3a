"""What ``import lightdet`` costs: seconds after torch, and which heavy packages it loads.

    python benchmarks/import_time.py [--repeats 5]

Each measurement is a fresh interpreter: ``import torch`` first (timed), then the statement
(timed). Prints the median of ``repeats`` runs per statement and the heavy packages loaded
(none expected: ClearML, Hydra, Lightning, albumentations and torchmetrics load on use).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

STATEMENTS = (
    "import lightdet",
    "from lightdet import Detector",
    "from lightdet import Detector; import torchvision",
)
HEAVY = ("clearml", "hydra", "pytorch_lightning", "lightning", "albumentations", "torchmetrics")
_PROBE = """
import json, sys, time
t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
{statement}
t2 = time.perf_counter()
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps({{"torch": t1 - t0, "after": t2 - t1, "heavy": heavy}}))
"""


def measure(statement: str, repeats: int) -> tuple[float, float, list[str]]:
    runs = []
    for _ in range(repeats):
        code = _PROBE.format(statement=statement, heavy=HEAVY)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout))
    return (
        statistics.median(r["torch"] for r in runs),
        statistics.median(r["after"] for r in runs),
        runs[-1]["heavy"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'statement':55s} {'torch s':>8s} {'after s':>8s}  heavy packages loaded")
    for statement in STATEMENTS:
        torch_s, after_s, heavy = measure(statement, args.repeats)
        print(f"{statement:55s} {torch_s:8.3f} {after_s:8.3f}  {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
