"""Seconds from the command to the first training step, and where they go.

    python benchmarks/startup.py [--rounds 3] [overrides ...]

Each round starts a fresh Python process that does what ``python -m lightdet.train <overrides>``
does (compose the config under the guard, create the ClearML task, build the data and the model,
index the splits, Lightning's set-up and sanity validation) and reports the time since its
launch at: imports done, config composed, set up (ClearML task created, data and model built,
splits indexed: Lightning's ``setup``), and the first training batch starting (after
Lightning's sanity validation). The default configuration's shapes data must exist already
(a first ``make train`` generates it), so generation is not counted. ClearML records offline in
a temporary cache. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("imports", "composed", "set up", "first step")


def _one(overrides: list[str], launched: float, out: Path) -> None:
    marks = {}
    import pytorch_lightning as pl  # noqa: F401  what the entry point imports
    from hydra import compose, initialize_config_dir

    import lightdet.train  # noqa: F401  the entry module, as `python -m lightdet.train` loads it
    from lightdet.cli import CONFIG_DIR
    from lightdet.runs.train import run_training

    marks["imports"] = time.time() - launched

    class Probe(pl.Callback):
        def setup(self, trainer, pl_module, stage):
            marks["set up"] = time.time() - launched

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if "first step" not in marks:
                marks["first step"] = time.time() - launched
                out.write_text(json.dumps(marks))
                trainer.should_stop = True

    run_dir = Path(tempfile.mkdtemp(prefix="lightdet-startup-")) / "run"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[*overrides, f"paths.output_dir={run_dir}", "test=false"]
        )
    marks["composed"] = time.time() - launched
    try:
        run_training(cfg, extra_callbacks=[Probe()], bind_hydra=False)
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)  # its checkpoint: ~180 MB a round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for startup.json/.md")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.one:
        _one(overrides, float(args.one[0]), Path(args.one[1]))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CLEARML_OFFLINE_MODE": "1",
            "CLEARML_CACHE_DIR": f"{tmp}/clearml",
            "PYTHONPATH": str(REPO / "src"),
        }
        for round_ in range(args.rounds):
            out = Path(tmp) / f"{round_}.json"
            launched = time.time()
            subprocess.run(
                [sys.executable, __file__, "--one", repr(launched), str(out), *overrides],
                env=env,
                check=True,
                capture_output=True,
            )
            marks = json.loads(out.read_text())
            rows.append(marks)
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {marks[k]:.1f} s" for k in STAGES),
                flush=True,
            )
    medians = {k: statistics.median(r[k] for r in rows) for k in STAGES}
    print("medians: " + ", ".join(f"{k} {v:.1f} s" for k, v in medians.items()))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "startup.json").write_text(
            json.dumps({"overrides": overrides, "rounds": rows}, indent=1)
        )
        lines = [
            "# Start-up: seconds from the command to the first training step",
            "",
            f"Overrides: `{' '.join(overrides) or '(the default configuration)'}`; "
            f"{len(rows)} fresh processes, medians (each round's figure in brackets); "
            "seconds since the launch.",
            "",
            "| reached | seconds |",
            "|---|---|",
        ]
        lines += [
            f"| {k} | {v:.1f} ({', '.join(f'{r[k]:.1f}' for r in rows)}) |"
            for k, v in medians.items()
        ]
        (out / "startup.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
