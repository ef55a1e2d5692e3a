"""``predict`` on a folder of awkward files: boxes drawn on the objects of the upright images,
the corrupt file named and counted, predictions.json in the images' own pixels.

The checkpoint is replaced by ``BlobNet`` (tests/unit/test_detector.py), which finds the bright
square exactly, so where each box must be drawn is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lightdet import Detector
from lightdet.evaluation.thresholds import save_threshold
from lightdet.outputs import mark
from lightdet.runs.compose import compose_config
from lightdet.runs.predict import run_prediction
from lightdet.viz import class_colour
from tests.unit.test_detector import BOX, CLASSES, BlobNet, H, W, _upright


def _folder(root):
    """A corrupt file, a grayscale JPEG, an RGBA PNG, an EXIF-rotated JPEG (orientation 6)."""
    root.mkdir()
    (root / "a_corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    Image.fromarray(_upright()[..., 0]).save(root / "b_gray.jpg", quality=100)  # mode L
    rgba = np.concatenate([_upright(), np.full((H, W, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(root / "c_rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": the stored pixels are [W, H]
    Image.fromarray(_upright()).transpose(Image.Transpose.ROTATE_90).save(
        root / "d_phone.jpg", exif=exif, quality=100
    )
    return root


@pytest.fixture
def blob_checkpoint(monkeypatch):
    monkeypatch.setattr(
        Detector,
        "from_checkpoint",
        classmethod(lambda cls, path, device=None: cls(BlobNet(), CLASSES, device="cpu")),
    )


def _cfg(tmp_path, *overrides):
    return compose_config(
        "predict", [f"paths.root_dir={tmp_path}", "ckpt_path=/nowhere.ckpt", *overrides]
    )


def test_predict_draws_on_the_upright_objects_and_counts_the_corrupt_file(
    tmp_path, blob_checkpoint, capsys
):
    inputs = _folder(tmp_path / "photos")
    summary = run_prediction(_cfg(tmp_path, f"input={inputs}", "score_thresh=0.5"))
    assert summary["images"] == 3 and summary["detections"] == 3
    assert summary["unreadable"] == [str(inputs / "a_corrupt.jpg")]
    out = tmp_path / "logs" / "predict" / "runs"
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert run == __import__("pathlib").Path(summary["output_dir"])
    result = json.loads((run / "predictions.json").read_text())
    assert result["score_threshold"] == 0.5 and result["score_threshold_source"] == "score_thresh"
    by_file = {e["file"].rsplit("/", 1)[1]: e for e in result["images"]}
    assert "error" in by_file["a_corrupt.jpg"]
    for name in ("b_gray.jpg", "c_rgba.png", "d_phone.jpg"):
        entry = by_file[name]
        assert (entry["width"], entry["height"]) == (W, H)  # the upright image, also for d
        (found,) = entry["detections"]
        assert found["box"] == BOX and found["name"] == "square" and found["category_id"] == 2
        drawn = np.asarray(Image.open(run / "images" / f"{name.rsplit('.', 1)[0]}.jpg"))
        assert drawn.shape == (H, W, 3)
        colour = np.array(class_colour(2))
        # the box outline (2 px from the box's corners inward) in the class colour, on all four
        # sides (JPEG blurs it a little); the square's middle and the far corner untouched
        x1, y1, x2, y2 = (int(v) for v in BOX)
        xm, ym = (x1 + x2) // 2, (y1 + y2) // 2
        for y, x in ((y1, xm), (ym, x1), (y2, xm), (ym, x2)):
            assert np.abs(drawn[y, x].astype(int) - colour).max() < 60, (name, y, x, drawn[y, x])
        assert drawn[ym, xm].min() > 200  # white square inside
        assert drawn[H - 5, W - 5].max() < 30  # black background far away
    assert "1 unreadable, skipped" in capsys.readouterr().out


def test_threshold_from_the_evaluation_kept_beside_the_checkpoint(tmp_path, blob_checkpoint):
    folder = mark(tmp_path / "run" / "checkpoints", "run")
    ckpt = folder / "best.ckpt"
    ckpt.write_bytes(b"weights")
    best = {"threshold": 0.05, "f1": 0.8, "precision": 0.8, "recall": 0.8}
    assert save_threshold(ckpt, best, {}, "val split") is not None
    Image.fromarray(_upright()).save(tmp_path / "one.png")
    cfg = _cfg(tmp_path, f"input={tmp_path / 'one.png'}", f"ckpt_path={ckpt}")
    summary = run_prediction(cfg)
    assert summary["score_threshold"] == 0.05
    assert summary["detections"] == 2  # the whole-image circle (0.1) passes 0.05 too
    ckpt.write_bytes(b"weights, trained further")  # a rewritten checkpoint: stale threshold
    assert (
        run_prediction(
            _cfg(
                tmp_path,
                f"input={tmp_path / 'one.png'}",
                f"ckpt_path={ckpt}",
                f"output_dir={tmp_path / 'out2'}",
            )
        )["score_threshold"]
        == 0.25
    )


def test_a_stored_threshold_that_is_no_score_is_not_used(tmp_path, caplog):
    """A NaN or out-of-range threshold beside a checkpoint (an edited or damaged file) is
    named in a warning and predict falls back to its default, instead of using it as is."""
    from lightdet.evaluation.thresholds import load_threshold, sidecar

    folder = mark(tmp_path / "run" / "checkpoints", "run")
    ckpt = folder / "best.ckpt"
    ckpt.write_bytes(b"weights")
    best = {"threshold": 0.4, "f1": 0.8, "precision": 0.8, "recall": 0.8}
    save_threshold(ckpt, best, {}, "val split")
    assert load_threshold(ckpt)["threshold"] == 0.4
    stored = sidecar(ckpt).read_text()
    for bad in ("NaN", "1.5", "-0.1", "Infinity"):
        sidecar(ckpt).write_text(stored.replace('"threshold": 0.4', f'"threshold": {bad}'))
        caplog.clear()
        assert load_threshold(ckpt) is None, bad
        assert "is not a score in [0, 1]: not used" in caplog.text and "eval.json" in caplog.text


def test_glob_input_and_no_match(tmp_path, blob_checkpoint):
    inputs = _folder(tmp_path / "photos")
    summary = run_prediction(_cfg(tmp_path, f"input='{inputs}/*.png'"))
    assert summary["images"] == 1 and summary["unreadable"] == []
    with pytest.raises(FileNotFoundError, match="matches no image"):
        run_prediction(_cfg(tmp_path, f"input='{inputs}/*.tif'"))


def test_a_drawn_image_never_replaces_an_existing_file(tmp_path, blob_checkpoint):
    inputs = _folder(tmp_path / "photos")
    out = tmp_path / "out"
    run_prediction(_cfg(tmp_path, f"input={inputs / 'c_rgba.png'}", f"output_dir={out}"))
    first = (out / "images" / "c_rgba.jpg").read_bytes()
    run_prediction(_cfg(tmp_path, f"input={inputs / 'c_rgba.png'}", f"output_dir={out}"))
    assert (out / "images" / "c_rgba.jpg").read_bytes() == first
    assert (out / "images" / "c_rgba_1.jpg").is_file()


class NaNNet(BlobNet):
    """BlobNet, with ``nan_scores``: every score NaN (a model whose weights went NaN), or one
    extra NaN box beside the real detections."""

    def __init__(self, nan_scores: bool):
        super().__init__()
        self.nan_scores = nan_scores

    def forward(self, images):
        outs = super().forward(images)
        for out in outs:
            if self.nan_scores:
                out["scores"] = torch.full_like(out["scores"], float("nan"))
            else:
                out["boxes"] = torch.cat([out["boxes"], torch.full((1, 4), float("nan"))])
                out["scores"] = torch.cat([out["scores"], torch.tensor([0.95])])
                out["labels"] = torch.cat([out["labels"], torch.tensor([1])])
        return outs


def _nan_detector(monkeypatch, nan_scores: bool) -> None:
    monkeypatch.setattr(
        Detector,
        "from_checkpoint",
        classmethod(lambda cls, path, device=None: cls(NaNNet(nan_scores), CLASSES, device="cpu")),
    )


def test_non_finite_outputs_are_counted_and_a_model_giving_only_them_fails(
    tmp_path, monkeypatch, capsys
):
    """Some NaN boxes: dropped, counted in the summary and predictions.json, the rest kept.
    Only NaN: not "0 detections" and rc 0, as if the scene were empty, but one line and a
    failure (Hydra prints it alone)."""
    from hydra.errors import CompactHydraException

    from lightdet.runs.predict import NonFiniteOutputError

    Image.fromarray(_upright()).save(tmp_path / "one.png")
    _nan_detector(monkeypatch, nan_scores=False)
    summary = run_prediction(_cfg(tmp_path, f"input={tmp_path / 'one.png'}", "score_thresh=0.5"))
    assert summary["detections"] == 1 and summary["dropped_nonfinite"] == 1
    assert "non-finite: 1 detections with NaN/inf boxes or scores dropped, in 1 images" in (
        capsys.readouterr().out
    )
    written = json.loads(
        next((tmp_path / "logs/predict/runs").glob("*/predictions.json")).read_text()
    )
    assert written["images"][0]["dropped_nonfinite"] == 1
    _nan_detector(monkeypatch, nan_scores=True)
    cfg = _cfg(tmp_path, f"input={tmp_path / 'one.png'}", f"output_dir={tmp_path / 'nan'}")
    with pytest.raises(NonFiniteOutputError, match=r"no detection left: the model returned NaN"):
        run_prediction(cfg)
    assert issubclass(NonFiniteOutputError, CompactHydraException)


def test_a_glob_says_how_far_it_has_walked(tmp_path, capsys):
    """A pattern over a large tree walks for minutes: the paths looked at are shown as they
    come (on stderr, cleared at the end), and the images found are returned sorted."""
    from lightdet.runs.predict import expand_input

    for i in range(30):
        folder = tmp_path / f"d{i % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"{i:02d}.txt").write_text("x")
        Image.new("RGB", (4, 4)).save(folder / f"{i:02d}.png")
    found = expand_input(f"{tmp_path}/**/*")
    assert found == sorted(str(p) for p in tmp_path.rglob("*.png")) and len(found) == 30
    err = capsys.readouterr().err
    assert f"finding images ({tmp_path}/**/*)" in err and " paths" in err
