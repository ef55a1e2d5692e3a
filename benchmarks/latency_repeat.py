"""Is ``make compare``'s latency figure reproducible? The same measurement, repeated.

    python benchmarks/latency_repeat.py <checkpoint> [<checkpoint> ...] [--rounds 2] [--images 8]

Each round measures every checkpoint once, in turn (A B A B ...), each in a fresh process, exactly
as the study's report does (:mod:`lightdet.studies.latency`, default settings: batch 1 and 8, 3
warm-up runs, 5 blocks of 15 timed repeats, images of the shapes data or of
``--images-from``).
Prints each round's medians and, per checkpoint and batch size, the largest ratio between
rounds: the study's claim is that it stays within 1.15. Run it alone: anything else on the CPU
moves the figures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lightdet.data.inputs import image_inputs
from lightdet.studies.latency import measure_in_subprocess

SETTINGS = {
    "batch_sizes": [1, 8],
    "warmup": 3,
    "repeats": 15,
    "blocks": 5,
    "threads": None,
    "device": None,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--images-from", default="data/shapes/VOC/JPEGImages")
    parser.add_argument("--blocks", type=int, default=5, help="1: a single block, as before")
    args = parser.parse_args()
    images = [str(i.source) for i in image_inputs(args.images_from)[: args.images]]
    settings = {**SETTINGS, "blocks": args.blocks}
    medians: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for n, ckpt in enumerate(args.checkpoints):
                speed = measure_in_subprocess(ckpt, images, settings, Path(tmp) / f"{n}")
                for bs, timing in speed["latency"].items():
                    medians.setdefault((ckpt, bs), []).append(timing["median_ms"])
                    blocks = ", ".join(f"{m:.1f}" for m in timing.get("block_medians_ms", []))
                    print(
                        f"round {round_ + 1}  {speed['model']:<12} batch {bs}: "
                        f"{timing['median_ms']:.2f} ms/img (p10 {timing['p10_ms']:.2f}, "
                        f"p90 {timing['p90_ms']:.2f}; block medians {blocks})",
                        flush=True,
                    )
    print("\nlargest ratio between rounds (medians):")
    for (ckpt, bs), values in medians.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {ckpt} batch {bs}: {max(values) / min(values):.3f}  ({shown} ms)")


if __name__ == "__main__":
    main()
