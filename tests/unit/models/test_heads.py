import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.retinanet import RetinaNetClassificationHead

from lightdet.models.heads import FocalClassificationHead, prior_bias

C, A, K = 16, 9, 4  # channels, anchors per location, classes with background


def _problem(seed=0):
    """Random logits, labels and matches (with foreground, background and ignored anchors)."""
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(300, K, generator=g) * 3 for _ in range(2)]
    targets = [{"labels": torch.randint(1, K, (5,), generator=g)} for _ in range(2)]
    matched = [torch.randint(-2, 5, (300,), generator=g) for _ in range(2)]  # -1 bg, -2 ignored
    return targets, {"cls_logits": torch.stack(logits)}, matched


def _losses(alpha, gamma):
    ours = FocalClassificationHead(C, A, K, focal_alpha=alpha, focal_gamma=gamma)
    ref = RetinaNetClassificationHead(C, A, K)
    return ours.compute_loss(*_problem()), ref.compute_loss(*_problem())


def test_default_focal_loss_equals_torchvision_exactly():
    ours, ref = _losses(0.25, 2.0)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("alpha,gamma", [(0.5, 2.0), (0.25, 1.0), (-1.0, 0.0)])
def test_other_parameters_change_the_loss(alpha, gamma):
    ours, ref = _losses(alpha, gamma)
    assert not torch.allclose(ours, ref)


def test_no_alpha_no_gamma_is_plain_sigmoid_cross_entropy():
    targets, outputs, matched = _problem()
    head = FocalClassificationHead(C, A, K, focal_alpha=-1.0, focal_gamma=0.0)
    expected = 0.0
    for t, logits, m in zip(targets, outputs["cls_logits"], matched):
        gt = torch.zeros_like(logits)
        fg = m >= 0
        gt[fg, t["labels"][m[fg]]] = 1.0
        valid = m != -2
        bce = F.binary_cross_entropy_with_logits(logits[valid], gt[valid], reduction="sum")
        expected += bce / max(1, int(fg.sum()))
    torch.testing.assert_close(head.compute_loss(targets, outputs, matched), expected / 2)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5])
def test_prior_probability_sets_the_classification_bias(p):
    head = FocalClassificationHead(C, A, K, prior_probability=p)
    assert torch.allclose(head.cls_logits.bias, torch.full((A * K,), -math.log((1 - p) / p)))
    assert torch.sigmoid(head.cls_logits.bias).sub(p).abs().max() < 1e-6
    assert prior_bias(p) == pytest.approx(-math.log((1 - p) / p))


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1])
def test_prior_probability_outside_unit_interval_is_refused(p):
    with pytest.raises(ValueError, match="prior_probability"):
        FocalClassificationHead(C, A, K, prior_probability=p)


def test_state_dict_keys_match_torchvision():
    ours = FocalClassificationHead(C, A, K).state_dict().keys()
    assert list(ours) == list(RetinaNetClassificationHead(C, A, K).state_dict().keys())


@pytest.mark.parametrize("gamma", [0.0, 0.2, 0.5])
def test_gamma_below_one_keeps_gradients_finite_on_certain_predictions(gamma):
    """torchvision's loss gives NaN gradients where (1 - p_t) ** gamma meets p_t == 1 (a logit
    of 20 is enough in float32): the paper's gamma 0.5 trained to NaN weights. Ours stays
    finite there, and equals torchvision's loss value elsewhere."""
    from torchvision.ops import sigmoid_focal_loss

    from lightdet.models.heads import focal_loss

    x = torch.tensor([[20.0, -20.0, 3.0], [-40.0, 0.5, 18.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    loss = focal_loss(x, t, alpha=0.5, gamma=gamma)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    ref = sigmoid_focal_loss(x.detach(), t, alpha=0.5, gamma=gamma, reduction="sum")
    torch.testing.assert_close(loss.detach(), ref, rtol=1e-6, atol=1e-12)
    if gamma > 0:  # the reference itself: NaN gradients, the failure this guards against
        x2 = x.detach().requires_grad_()
        sigmoid_focal_loss(x2, t, alpha=0.5, gamma=gamma, reduction="sum").backward()
        assert not torch.isfinite(x2.grad).all()
