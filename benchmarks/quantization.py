"""INT8 against float32 for trained detectors on this CPU: ms per image at batch 1, val mAP,
file size; onnxruntime's static quantisation (lightdet's) and, where installed, OpenVINO with
NNCF, the two toolkits the choice was made between.

    python benchmarks/quantization.py NAME=CHECKPOINT [NAME=CHECKPOINT ...]
        [--calibration 200] [--images 16] [--rounds 3]
        [--repeats 3] [--threads N] [--openvino [NAME ...]] [--out benchmarks/results]

Per checkpoint, in this process: the float32 ONNX file as ``make export`` writes it, the
INT8 file as ``make export PRECISION=int8`` writes it (calibrated on ``--calibration`` images
spread over the training split), and with ``--openvino`` the float file read by OpenVINO and
quantised by ``nncf.quantize`` on the same calibration images (its defaults: NNCF picks what
to quantise), and lightdet's INT8 file read by OpenVINO (which takes ONNX QDQ files).
Accuracy: COCO mAP on the whole validation split of the checkpoint's data, each file's
detections against PyTorch's from the same evaluation code.
Latency: each runtime in a fresh process per round (runtimes in turn, A B C A B C...),
``--repeats`` passes over the first ``--images`` validation images after one untimed pass; the
figure is the median over rounds of each round's median ms per image, with the rounds' range.
OpenVINO and NNCF are not lightdet dependencies: install them where you run this, e.g.
``pip install --target /tmp/ov openvino nncf`` and ``PYTHONPATH=/tmp/ov``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import cpu_description  # noqa: E402


def _prepare(name: str, checkpoint: str, args, folder: Path) -> dict:
    """The files of one checkpoint and their accuracy (as ``make compare`` makes and scores
    them: :func:`lightdet.deploy.runtimes.prepare`); the OpenVINO pair; the latency images."""
    from lightdet.deploy.runtimes import prepare

    started = time.perf_counter()
    found = prepare(checkpoint, folder / name, ["onnx-fp32", "onnx-int8"], args.calibration)
    print(f"{name}: ONNX files and their accuracy ({time.perf_counter() - started:.0f} s)")
    files = {
        "onnx float32": Path(found["files"]["onnx-fp32"]),
        "onnx int8": Path(found["files"]["onnx-int8"]),
    }
    accuracy = {
        "pytorch": found["coco"]["pytorch"],
        "onnx float32": found["coco"]["onnx-fp32"],
        "onnx int8": found["coco"]["onnx-int8"],
    }
    from lightdet.deploy.runtimes import load_trained

    datamodule, trained = load_trained(checkpoint)
    net, names = trained.net.float().eval(), trained.class_names
    val = datamodule.datasets["val"]
    notes: list[str] = []
    if args.openvino is not None and (not args.openvino or name in args.openvino):
        from lightdet.deploy.quantize import calibration_images
        from lightdet.deploy.verify import dataset_items, verify

        calibration = list(calibration_images(datamodule, "train", args.calibration)[0])
        try:
            ov_files = _openvino(
                files["onnx float32"], files["onnx int8"], calibration, folder / name
            )
        except Exception as err:  # a model the toolkit cannot take: said in the results
            ov_files = {}
            notes.append(f"OpenVINO/NNCF failed: {type(err).__name__}: {str(err)[:200]}")
            print(f"{name}: {notes[-1]}", flush=True)
        cache: dict = {}  # PyTorch's outputs, computed once for the three
        for variant, path in ov_files.items():
            checked = verify(
                net,
                _runner(variant, path, args.threads),
                dataset_items(val, len(val), False),
                names,
                difficult=datamodule.difficult_boxes,
                cache=cache,
            )
            accuracy[variant] = {k: float(b) for k, (_, b) in checked.coco.items()}
        files.update(ov_files)
    for variant, coco in accuracy.items():
        print(f"{name} {variant}: {coco}")
    images = np.stack([val[i][0].numpy() for i in range(min(args.images, len(val)))])
    np.save(folder / f"{name}_images.npy", images)
    sizes = {v: _size_mb(p) for v, p in files.items()}
    sizes["pytorch"] = round(Path(checkpoint).stat().st_size / 2**20, 2)
    return {
        "checkpoint": checkpoint,
        "model": type(net).__name__,
        "val_images": len(val),
        "calibration": found["calibration"],
        "files": {v: str(p) for v, p in files.items()},
        "size_mb": sizes,
        "accuracy": accuracy,
        "notes": notes,
    }


def _openvino(float_file: Path, int8_file: Path, calibration: list, stem: Path) -> dict[str, Path]:
    """OpenVINO's own pair (the float file converted, and quantised by ``nncf.quantize`` with
    its defaults on the same calibration images), and lightdet's INT8 file read by OpenVINO."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(float_file))
    quantised = nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration))
    paths = {
        "openvino float32": stem.with_suffix(".ov.xml"),
        "openvino int8 (nncf)": stem.with_suffix(".ov-int8.xml"),
        "openvino int8 (lightdet's file)": stem.with_suffix(".ov-ort-int8.xml"),
    }
    ov.save_model(model, str(paths["openvino float32"]), compress_to_fp16=False)
    ov.save_model(quantised, str(paths["openvino int8 (nncf)"]), compress_to_fp16=False)
    ov.save_model(
        ov.convert_model(str(int8_file)),
        str(paths["openvino int8 (lightdet's file)"]),
        compress_to_fp16=False,
    )
    return paths


def _size_mb(path: Path) -> float:
    size = path.stat().st_size
    if path.suffix == ".xml":  # OpenVINO keeps the weights beside it
        size += path.with_suffix(".bin").stat().st_size
    return round(size / 2**20, 2)


def _runner(variant: str, path: str | Path, threads: int):
    """A function from a float32 ``[3, H, W]`` array to the detector's three outputs."""
    if variant == "pytorch":
        import torch

        from lightdet.detector import Detector

        torch.set_num_threads(threads)
        net = Detector.from_checkpoint(str(path), device="cpu").net.float().eval()

        def run(image):
            with torch.no_grad():
                out = net([torch.from_numpy(image)])[0]
            return out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy()

        return run
    if variant.startswith("openvino"):
        import openvino as ov

        compiled = ov.Core().compile_model(
            str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        )
        request = compiled.create_infer_request()
        names = [o.get_any_name() for o in compiled.outputs]

        def run_ov(image):
            result = request.infer({"image": image})
            by_name = {n: result[o] for n, o in zip(names, compiled.outputs)}
            return by_name["boxes"], by_name["scores"], by_name["labels"]

        return run_ov
    from lightdet.deploy.export import load_runner

    return load_runner(path, threads)


def _time(variant: str, path: str, images_path: str, threads: int, repeats: int) -> dict:
    """Run in a fresh process: one untimed pass, then ``repeats`` timed ones."""
    run = _runner(variant, path, threads)
    images = np.load(images_path)
    for image in images:
        run(image)
    per_image = []
    for _ in range(repeats):
        for image in images:
            started = time.perf_counter()
            run(image)
            per_image.append(1000 * (time.perf_counter() - started))
    return {"median_ms": statistics.median(per_image), "runs": len(per_image)}


def _latency(entry: dict, name: str, args, folder: Path) -> dict[str, dict]:
    variants = {"pytorch": entry["checkpoint"], **entry["files"]}
    rounds: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for variant, path in variants.items():
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--time",
                    variant,
                    path,
                    str(folder / f"{name}_images.npy"),
                    str(args.threads),
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            ms = json.loads(done.stdout.strip().splitlines()[-1])["median_ms"]
            rounds[variant].append(ms)
            print(f"{name} round {r + 1} {variant}: {ms:.1f} ms", flush=True)
    return {
        v: {"median_ms": statistics.median(ms), "round_medians_ms": ms} for v, ms in rounds.items()
    }


def _markdown(results: dict, args) -> str:
    lines = [
        "# INT8 against float32 on this CPU",
        "",
        f"CPU: {cpu_description()}; {args.threads} threads in every runtime; batch 1; "
        f"{args.rounds} rounds, runtimes in turn, each in a fresh process, {args.repeats} passes "
        f"over {args.images} validation images after one untimed pass; median of the rounds' "
        "medians (rounds' range). Accuracy: COCO mAP on the whole validation split; change "
        "against PyTorch float32. Calibration: images spread over the training split.",
        "",
        "| model | runtime | ms/img (rounds' range) | x ONNX float32 | mAP | change | mAP50 | MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        base = entry["latency"]["onnx float32"]["median_ms"]
        reference = entry["accuracy"]["pytorch"]
        for variant, timing in entry["latency"].items():
            acc = entry["accuracy"][variant]
            spread = timing["round_medians_ms"]
            lines.append(
                f"| {name} | {variant} | {timing['median_ms']:.1f} ({min(spread):.1f}-"
                f"{max(spread):.1f}) | {timing['median_ms'] / base:.2f} | {acc['map']:.4f} | "
                f"{acc['map'] - reference['map']:+.4f} | {acc['map_50']:.4f} | "
                f"{entry['size_mb'][variant]} |"
            )
    notes = [f"- {name}: {note}" for name, entry in results.items() for note in entry["notes"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["--time"]:
        variant, path, images, threads, repeats = sys.argv[2:7]
        print(json.dumps(_time(variant, path, images, int(threads), int(repeats))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=CHECKPOINT")
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--openvino",
        nargs="*",
        metavar="NAME",
        help="also OpenVINO with NNCF: for every checkpoint, or for the NAMEs given",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="quantization")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lightdet-int8-bench-") as scratch:
        for item in args.runs:
            name, checkpoint = item.split("=", 1)
            entry = _prepare(name, checkpoint, args, Path(scratch))
            entry["latency"] = _latency(entry, name, args, Path(scratch))
            results[name] = entry
    args.out.mkdir(parents=True, exist_ok=True)
    text = _markdown(results, args)
    (args.out / f"{args.name}.md").write_text(text)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    (args.out / f"{args.name}.json").write_text(
        json.dumps(
            {"cpu": cpu_description(), "settings": settings, "results": results},
            indent=2,
            default=str,
        )
    )
    print(text)


if __name__ == "__main__":
    main()
