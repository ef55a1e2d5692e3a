"""Training speed on a shared CPU: one job alone, two at once, and one beside a CPU hog.

    python benchmarks/cpu_sharing.py [--seconds 40] [--model retinanet] [--out benchmarks/results]

Each job is a fresh process that trains the default config of ``make train MODEL=<model>`` (its
data loader with its configured workers, the precision ``auto`` picks, AdamW), as a plain loop
of optimizer steps. Jobs start together, warm up, wait for each other, then count steps for the
same window, and keep training until every job's window has closed, so each window is shared
the whole time. The hog is one process spinning on one core (another user's program).

Two settings: ``stock`` is torch's defaults (as many threads as cores, always);
``lightdet`` is what every lightdet command does: lightdet imported first (a thread count
within a container's CPU quota, :mod:`lightdet.threads`) and the thread count adapted each step
to the cores other processes leave free (:class:`lightdet.lightning.cpu_share.ThreadShare`,
the ``callbacks.cpu_share`` callback in training). The ratio of each job's steps per second
to the same setting's job alone is the figure: two jobs sharing a machine fairly
each keep about 0.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("stock", "lightdet")
SCENARIOS = ("alone", "two at once", "beside a hog")


def job(args: argparse.Namespace) -> None:
    """One training job (a child process); prints a JSON line with its steps per second."""
    if args.setting == "stock":
        import torch  # noqa: F401  # first: OpenMP loads with torch's own defaults
    else:
        import lightdet  # noqa: F401  # first, as in every lightdet command
    import itertools

    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from lightdet.cli import CONFIG_DIR
    from lightdet.lightning import cpu_share
    from lightdet.lightning.precision import resolve_precision
    from lightdet.runs.build import build_datamodule

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.model}"])
    precision, _ = resolve_precision(cfg.trainer.precision, "cpu")
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    torch.manual_seed(0)
    net = instantiate(cfg.model.net, num_classes=datamodule.num_classes, pretrained="none")
    optimizer = instantiate(cfg.model.optimizer)(net.parameters())
    batches = itertools.cycle(datamodule.train_dataloader())
    net.train()
    share = None
    if args.setting == "lightdet" and cpu_share.adapts():  # what callbacks.cpu_share does
        share = cpu_share.ThreadShare(torch.get_num_threads())
    counts = []

    def step() -> None:
        if share is not None and (count := share.tick()) is not None:
            counts.append(count)
        images, targets = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
            loss = sum(net(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator, oneDNN kernels, loader worker
        step()
    sync = Path(args.sync)
    (sync / f"ready-{args.index}").touch()
    while len(list(sync.glob("ready-*"))) < args.jobs:
        time.sleep(0.05)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    (sync / f"done-{args.index}").touch()
    while len(list(sync.glob("done-*"))) < args.jobs:  # keep the others' windows shared
        step()
    print(
        json.dumps(
            {
                "steps_per_s": steps / elapsed,
                "steps": steps,
                "threads": torch.get_num_threads(),
                "thread_changes": counts,
                "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
                "precision": precision,
                "workers": datamodule.num_workers,
            }
        ),
        flush=True,
    )


def run(setting: str, jobs: int, hog: bool, opts: argparse.Namespace) -> list[dict]:
    """Start ``jobs`` jobs of a setting together (and a hog), return each one's figures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(item.split("=", 1) for item in opts.env)
    hog_proc = None
    if hog:
        hog_proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    with tempfile.TemporaryDirectory() as sync:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--job",
                    f"--setting={setting}",
                    f"--index={i}",
                    f"--jobs={jobs}",
                    f"--sync={sync}",
                    f"--seconds={opts.seconds}",
                    f"--model={opts.model}",
                ],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            for i in range(jobs)
        ]
        results = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"a {setting} job failed (exit {proc.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
    if hog_proc is not None:
        hog_proc.kill()
        hog_proc.wait()
    return results


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="each job's measured window")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every scenario (A B A B)")
    parser.add_argument("--model", default="retinanet")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=SETTINGS, default="lightdet", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--sync", default="", help=argparse.SUPPRESS)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the jobs")
    parser.add_argument("--scenarios", nargs="*", choices=SCENARIOS, default=None)
    parser.add_argument("--only", choices=SETTINGS, default=None, help="measure one setting")
    opts = parser.parse_args()
    if opts.job:
        job(opts)
        return
    rates: dict[tuple[str, str], list[float]] = {}
    detail: dict[str, dict] = {}
    for _ in range(opts.repeats):  # settings and scenarios interleaved, medians over rounds
        for scenario in opts.scenarios or SCENARIOS:
            for setting in [opts.only] if opts.only else SETTINGS:
                jobs = 2 if scenario == "two at once" else 1
                found = run(setting, jobs, scenario == "beside a hog", opts)
                rates.setdefault((setting, scenario), []).extend(r["steps_per_s"] for r in found)
                detail[setting] = {k: v for k, v in found[0].items() if k not in ("steps",)}
                print(
                    setting,
                    scenario,
                    [(round(r["steps_per_s"], 3), r["thread_changes"]) for r in found],
                    flush=True,
                )
    report(rates, detail, opts)


def report(rates: dict, detail: dict, opts: argparse.Namespace) -> None:
    lines = [
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; model {opts.model} (make train's config), "
        f"{opts.seconds:.0f} s windows, {opts.repeats} rounds interleaved, medians; "
        "nothing else ran",
        "",
        "| setting | scenario | steps/s per job | x alone |",
        "|---|---|---|---|",
    ]
    table = []
    for setting in sorted({s for s, _ in rates}, key=SETTINGS.index):
        alone = statistics.median(rates[(setting, "alone")])
        for scenario in [s for s in SCENARIOS if (setting, s) in rates]:
            rate = statistics.median(rates[(setting, scenario)])
            table.append(
                {
                    "setting": setting,
                    "scenario": scenario,
                    "steps_per_s": rate,
                    "x_alone": rate / alone,
                    "all": rates[(setting, scenario)],
                }
            )
            lines.append(f"| {setting} | {scenario} | {rate:.3f} | {rate / alone:.2f}x |")
    for setting, d in detail.items():
        lines.append(f"\n{setting}: {d}")
    text = "\n".join(lines)
    print(text)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "cpu_sharing.md").write_text("# Training on a shared CPU\n\n" + text + "\n")
        (opts.out / "cpu_sharing.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
