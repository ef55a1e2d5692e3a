"""Indexing at scale: seconds to index a COCO-sized VOC folder with the default checks.

    python benchmarks/indexing.py [--images 100000] [--folder /tmp/lightdet-index-100k]
        [--rounds 2] [--out benchmarks/results]

Writes (once) a VOC folder of ``--images`` training images: a 192 px JPEG under every name
(hard links, so the disk holds one image per 50,000) and one annotation per image with 1-6 boxes;
then, in fresh processes, times what a training start does with it before the first step:
``DetectionDataModule.setup("fit")`` (read the annotations, check every image and box), with
the time to read the annotations and to check them shown apart. Every round is a new process,
so a second round shows what a second start of the same data pays: the index cache
(``data_policy.cache_index``, in a temporary folder here, empty at the first start). Run it
alone.
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
CLASSES = ("circle", "square", "triangle")


def make_folder(folder: Path, images: int) -> None:
    import random

    from PIL import Image

    done = folder / ".complete"
    if done.exists() and int(done.read_text()) == images:
        return
    (folder / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (folder / "Annotations").mkdir(exist_ok=True)
    (folder / "ImageSets/Main").mkdir(parents=True, exist_ok=True)
    sources = []  # a file system allows ~65,000 links to one file: one source per 50,000
    for block in range(0, images, 50_000):
        sources.append(folder / f"source{block // 50_000}.jpg")
        Image.new("RGB", (192, 192), (120, 90, 60)).save(sources[-1], quality=90)
    rng = random.Random(0)
    names = [f"{i:06d}" for i in range(images)]
    for i, name in enumerate(names):
        image = folder / "JPEGImages" / f"{name}.jpg"
        if not image.exists():
            os.link(sources[i // 50_000], image)
        objects = []
        for _ in range(rng.randint(1, 6)):
            x, y, s = rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(8, 40)
            objects.append(
                f"<object><name>{rng.choice(CLASSES)}</name><difficult>0</difficult>"
                f"<bndbox><xmin>{x:.1f}</xmin><ymin>{y:.1f}</ymin><xmax>{x + s:.1f}"
                f"</xmax><ymax>{y + s:.1f}</ymax></bndbox></object>"
            )
        (folder / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>192</width><height>192"
            f"</height><depth>3</depth></size>{''.join(objects)}</annotation>"
        )
    (folder / "ImageSets/Main/train.txt").write_text("\n".join(names) + "\n")
    (folder / "ImageSets/Main/val.txt").write_text("\n".join(names[:100]) + "\n")
    done.write_text(str(images))


def _one(folder: Path, out: Path) -> None:
    from lightdet.data import checks, sources
    from lightdet.lightning.datamodule import DetectionDataModule

    spent = {"read": 0.0, "check": 0.0}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - began

        return wrapper

    sources.VOCSource.records = timed("read", sources.VOCSource.records)
    import lightdet.lightning.datamodule as dm

    dm.check_records = timed("check", checks.check_records)
    source = sources.VOCSource(folder, class_names=list(CLASSES), train="train", val="val")
    datamodule = DetectionDataModule(source, num_workers=0)
    began = time.perf_counter()
    datamodule.setup("fit")
    spent["setup"] = time.perf_counter() - began
    spent["images"] = len(datamodule.datasets["train"])
    out.write_text(json.dumps(spent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--folder", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(Path(args.one[0]), Path(args.one[1]))
        return
    folder = Path(args.folder or f"/tmp/lightdet-index-{args.images}")
    began = time.perf_counter()
    make_folder(folder, args.images)
    print(f"folder {folder}: {args.images} images ready in {time.perf_counter() - began:.0f} s")
    cache = tempfile.mkdtemp(prefix="lightdet-index-cache-")  # cold at the first start
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "LIGHTDET_CACHE_DIR": cache}
    rounds = []
    for i in range(args.rounds):
        out = folder.parent / f"{folder.name}-round{i}.json"
        subprocess.run(
            [sys.executable, __file__, "--one", str(folder), str(out)],
            env=env,
            check=True,
            capture_output=True,
        )
        rounds.append(json.loads(out.read_text()))
        r = rounds[-1]
        print(
            f"start {i + 1}: setup {r['setup']:.1f} s (annotations read {r['read']:.1f} s, "
            f"checks {r['check']:.1f} s) for {r['images']} training images",
            flush=True,
        )
    if args.out:
        out = Path(args.out)
        (out / "indexing.json").write_text(
            json.dumps({"images": args.images, "rounds": rounds}, indent=1)
        )
        lines = [
            "# Indexing at scale",
            "",
            f"A VOC folder of {args.images:,} training images "
            "(192 px JPEGs hard-linked under every name, 1-6 boxes each) and 100 "
            "validation images; each start a fresh process, `DetectionDataModule.setup"
            '("fit")` with the default checks and the index cache (empty at the first '
            "start).",
            "",
            "| start | setup s | annotations read s | checks s |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {i + 1} | {r['setup']:.1f} | {r['read']:.1f} | {r['check']:.1f} |"
            for i, r in enumerate(rounds)
        ]
        lines.append(f"\nMedian start: {statistics.median(r['setup'] for r in rounds):.1f} s.")
        (out / "indexing.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
