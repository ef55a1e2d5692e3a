"""The Python API's Detector: inputs of every kind, boxes in the upright image, thresholds,
class filters, and a checkpoint rebuilt as it was trained.

``BlobNet`` stands in for a trained detector so that where the object is, is known: it follows
torchvision's detection interface and finds the bright square exactly. What it cannot check,
that a real trained checkpoint predicts as the validation loop does, is
``tests/integration/test_api.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lightdet import Detector
from lightdet.guard import CheckpointMismatchError, UnsafeCheckpointError, UnsafeConfigError
from lightdet.lightning.module import DetectionModule
from lightdet.models.restore import NotACheckpointError
from lightdet.models.retinanet import build_retinanet
from tests.conftest import CLASSES as SHAPE_CLASSES

CLASSES = list(SHAPE_CLASSES)
W, H = 120, 80
BOX = [10.0, 20.0, 30.0, 40.0]  # the white square, upright image (x 10..29, y 20..39)


class BlobNet(nn.Module):
    """The bright region's box as ``square`` (score 0.9), and the whole image as a low-scoring
    ``circle`` (score 0.1)."""

    def forward(self, images):
        outs = []
        for image in images:
            ys, xs = torch.nonzero(image.mean(0) > 0.5, as_tuple=True)
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            whole = [0, 0, image.shape[2], image.shape[1]]
            outs.append(
                {
                    "boxes": torch.tensor([[float(v) for v in box], whole], dtype=torch.float32),
                    "scores": torch.tensor([0.9, 0.1]),
                    "labels": torch.tensor([2, 1]),
                }
            )
        return outs


def _upright() -> np.ndarray:
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[20:40, 10:30] = 255
    return pixels


@pytest.fixture
def detector() -> Detector:
    return Detector(BlobNet(), CLASSES, device="cpu")


def test_every_input_kind_finds_the_square_at_its_place(detector, tmp_path):
    pixels = _upright()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    inputs = [
        tmp_path / "a.png",
        str(tmp_path / "a.png"),
        Image.fromarray(pixels),
        pixels,
        torch.from_numpy(pixels).permute(2, 0, 1),  # uint8 [3, H, W]
        torch.from_numpy(pixels).permute(2, 0, 1).float() / 255,  # the data contract
    ]
    results = detector.predict(inputs, batch_size=4)
    assert len(results) == len(inputs)
    for found in results:
        assert found.boxes.tolist() == [BOX] and found.names == ["square"]
        assert found.labels.tolist() == [2] and found.scores.tolist() == pytest.approx([0.9])
        assert (found.width, found.height) == (W, H)
    assert [r.source for r in results[:2]] == [str(tmp_path / "a.png")] * 2
    assert results[3].source is None
    assert results[0].to_list() == [
        {"box": BOX, "score": pytest.approx(0.9), "label": 2, "name": "square"}
    ]


def test_an_exif_rotated_copy_gives_the_box_in_the_upright_image(detector, tmp_path):
    """Stored rotated with EXIF orientation 6 ("rotate 90 clockwise to display"), as phones do:
    the box refers to the image as displayed, as the data readers' boxes do."""
    stored = Image.fromarray(_upright()).transpose(Image.Transpose.ROTATE_90)  # [W, H] pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    (from_file,) = detector.predict(tmp_path / "phone.jpg")
    assert (from_file.width, from_file.height) == (W, H)
    assert from_file.boxes.tolist() == [BOX]
    with Image.open(tmp_path / "phone.jpg") as opened:  # a PIL image is made upright too
        (from_pil,) = detector.predict(opened)
    assert from_pil.boxes.tolist() == [BOX]
    # the raw pixels (no EXIF): the rotated box, (x, y) -> (y, W - x)
    (raw,) = detector.predict(np.asarray(stored))
    assert (raw.width, raw.height) == (H, W)
    assert raw.boxes.tolist() == [[20.0, W - 30.0, 40.0, W - 10.0]]


def test_threshold_and_class_filter(detector):
    pixels = _upright()
    (everything,) = detector.predict(pixels, score_thresh=0.0)
    assert everything.names == ["square", "circle"]
    assert everything.boxes[1].tolist() == [0.0, 0.0, W, H]
    (circles,) = detector.predict(pixels, score_thresh=0.0, classes=["circle"])
    assert circles.names == ["circle"]
    (by_label,) = detector.predict(pixels, score_thresh=0.0, classes=[2])
    assert by_label.names == ["square"]
    (none,) = detector.predict(pixels, score_thresh=0.95)
    assert len(none) == 0 and none.boxes.shape == (0, 4)
    with pytest.raises(ValueError, match=r"'dog' is not one of \['circle', 'square', 'triangle'\]"):
        detector.predict(pixels, classes=["dog"])
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        detector.predict(pixels, batch_size=0)


def test_a_folder_is_read_in_name_order_and_batches_keep_the_order(detector, tmp_path):
    for i, x in enumerate([50, 0, 70]):
        pixels = np.zeros((H, W, 3), np.uint8)
        pixels[5:15, x : x + 10] = 255
        Image.fromarray(pixels).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    results = detector.predict(tmp_path, batch_size=2)
    assert [r.source.rsplit("/", 1)[-1] for r in results] == ["img0.png", "img1.png", "img2.png"]
    assert [r.boxes[0, 0].item() for r in results] == [50.0, 0.0, 70.0]


def test_a_checkpoint_is_rebuilt_as_trained(tmp_path):
    """Architecture, input size, classes and weights come from the checkpoint itself; the
    rebuilt detector gives exactly the trained module's detections."""
    net_cfg = {
        "_target_": "lightdet.models.retinanet.build_retinanet",
        "backbone": "resnet18",
        "fpn_channels": 32,
        "min_size": 96,
        "max_size": 128,
        "score_thresh": 0.0,
        "pretrained": "none",
    }
    torch.manual_seed(0)
    net = build_retinanet(num_classes=4, **{k: v for k, v in net_cfg.items() if k != "_target_"})
    module = DetectionModule(
        net, class_names=CLASSES, category_map={"circle": 1}, config={"model": {"net": net_cfg}}
    )
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)

    detector = Detector.from_checkpoint(path, device="cpu")
    assert detector.class_names == CLASSES and detector.category_map == {"circle": 1}
    assert detector.net.transform.min_size == (96,) and detector.net.transform.max_size == 128
    assert not detector.net.training
    image = torch.rand(3, 90, 110)
    (found,) = detector.predict(image, score_thresh=0.0)
    with torch.no_grad():
        (expected,) = net.eval()([image])
    assert len(found) > 0
    assert torch.equal(found.boxes, expected["boxes"]) and torch.equal(
        found.scores, expected["scores"]
    )
    assert (found.width, found.height) == (110, 90)


def test_checkpoints_that_are_missing_foreign_or_tampered_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.ckpt: no such checkpoint file"):
        Detector.from_checkpoint(tmp_path / "nothing.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": {"weight": torch.zeros(1)}}, foreign)  # someone else's file
    with pytest.raises(
        NotACheckpointError,
        match=r"foreign\.ckpt: not a lightdet training "
        r"checkpoint \(missing hyper_parameters",
    ):
        Detector.from_checkpoint(foreign)
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Image.new("RGB", (1, 1))}}, pickled)
    with pytest.raises(UnsafeCheckpointError, match=r"pickled\.ckpt: refused"):
        Detector.from_checkpoint(pickled)
    edited = tmp_path / "edited.ckpt"
    config = {"model": {"net": {"_target_": "os.system", "command": "echo hi"}}}
    hp = {"class_names": CLASSES, "config": config}
    torch.save({"state_dict": {"net.w": torch.zeros(1)}, "hyper_parameters": hp}, edited)
    with pytest.raises(UnsafeConfigError, match=r"edited\.ckpt: hyper_parameters\.config"):
        Detector.from_checkpoint(edited)


def test_a_stored_config_that_does_not_build_is_one_line_naming_the_checkpoint(tmp_path):
    """A stored model.net whose keys belong to another builder (an SSD target with RetinaNet's
    focal keys) is refused naming the file and the key, not with Hydra's traceback."""
    net_cfg = {"_target_": "lightdet.models.ssd.build_ssd", "focal_gamma": 2.0}
    hp = {"class_names": CLASSES, "config": {"model": {"net": net_cfg}}}
    torch.save(
        {"state_dict": {"net.w": torch.zeros(1)}, "hyper_parameters": hp}, tmp_path / "x.ckpt"
    )
    with pytest.raises(CheckpointMismatchError) as err:
        Detector.from_checkpoint(tmp_path / "x.ckpt")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'x.ckpt'}: hyper_parameters.config.model.net does ")
    assert "focal_gamma" in message and "\n" not in message


def test_weights_that_do_not_fit_the_stored_architecture_are_named(tmp_path):
    net_cfg = {
        "_target_": "lightdet.models.retinanet.build_retinanet",
        "backbone": "resnet18",
        "fpn_channels": 32,
        "min_size": 96,
        "max_size": 96,
    }
    net = build_retinanet(num_classes=4, backbone="resnet18", fpn_channels=16)  # not 32
    hp = {"class_names": CLASSES, "config": {"model": {"net": net_cfg}}}
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hp}, tmp_path / "odd.ckpt")
    with pytest.raises(
        CheckpointMismatchError,
        match=r"odd\.ckpt: the weights do not fit .* "
        r"shape checkpoint vs model \(\d+\): ",
    ):
        Detector.from_checkpoint(tmp_path / "odd.ckpt")


def test_predict_defaults_to_the_detectors_threshold(tmp_path):
    """One default for the API and the CLI: the detector's ``score_thresh`` (from a checkpoint:
    the F1-optimal threshold kept beside it, as make predict takes it)."""
    strict = Detector(BlobNet(), CLASSES, device="cpu", score_thresh=0.95)
    assert len(strict.predict(_upright())[0]) == 0  # BlobNet scores 0.9
    assert len(strict.predict(_upright(), score_thresh=0.5)[0]) == 1
    assert Detector(BlobNet(), CLASSES, device="cpu").score_thresh == 0.25


def test_default_threshold_is_the_evaluations_else_the_stated_default(tmp_path):
    from lightdet.evaluation.thresholds import default_threshold, save_threshold
    from lightdet.outputs import mark

    mark(tmp_path, "run")
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"weights")
    assert default_threshold(ckpt) == (0.25, "default (no evaluation kept beside the checkpoint)")
    best = {"threshold": 0.177, "f1": 0.5, "precision": 0.5, "recall": 0.5}
    save_threshold(ckpt, best, {}, "val split of my data")
    assert default_threshold(ckpt) == (0.177, "F1-optimal on val split of my data")
