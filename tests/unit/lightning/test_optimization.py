"""The effective batch, the learning rate that goes with it, and the backbone's own rate."""

import math

import pytest
import torch

from lightdet.lightning.optimization import (
    build_optimizer,
    parameter_groups,
    plan_batch,
    scale_learning_rates,
)
from lightdet.models.retinanet import build_retinanet


def test_accumulation_comes_nearest_to_the_nominal_batch():
    assert plan_batch(4, 1, nominal_batch_size=16).accumulation == 4
    assert plan_batch(4, 2, nominal_batch_size=16).accumulation == 2  # 2 processes
    assert plan_batch(6, 1, nominal_batch_size=16).accumulation == 3  # 18, nearer than 12
    assert plan_batch(32, 1, nominal_batch_size=16).accumulation == 1  # never below one
    assert plan_batch(4, 1, accumulation=3).accumulation == 3  # no nominal: as configured
    assert plan_batch(4, 2, nominal_batch_size=16).effective == 16


def test_the_learning_rate_follows_the_effective_batch():
    linear = plan_batch(4, 1, nominal_batch_size=16, lr_reference_batch_size=8)
    assert (linear.effective, linear.lr_scale, linear.rule) == (16, 2.0, "linear")
    root = plan_batch(4, 1, nominal_batch_size=16, lr_reference_batch_size=64, lr_scaling="sqrt")
    assert root.lr_scale == pytest.approx(math.sqrt(16 / 64)) == 0.5
    assert plan_batch(4, 8, lr_reference_batch_size=16).lr_scale == 2.0  # 8 GPUs x 4
    assert plan_batch(4, 1, nominal_batch_size=16).lr_scale == 1.0  # no reference: as given
    line = linear.describe(0.002)
    assert "4 per process x 1 process x 4 accumulated = 16 images per step" in line
    assert "lr x 2 (linear: effective 16 / reference 8) = 0.004" in line


@pytest.mark.parametrize(
    "bad", [{"nominal_batch_size": 0}, {"lr_scaling": "cubic"}, {"lr_reference_batch_size": -4}]
)
def test_wrong_settings_are_named(bad):
    with pytest.raises(ValueError, match=r"optimization\.(nominal_batch_size|lr_scaling|lr_ref)"):
        plan_batch(4, 1, **bad)


def test_the_trunk_gets_its_own_rate():
    net = build_retinanet(
        num_classes=4, backbone="resnet18", fpn_channels=32, trainable_backbone_layers=3
    )
    groups = parameter_groups(net, backbone_lr_mult=0.1)
    optimizer = torch.optim.SGD(groups, lr=0.01)
    scale_learning_rates(optimizer, 2.0)
    trunk, rest = optimizer.param_groups
    assert trunk["lr"] == pytest.approx(0.002) and rest["lr"] == pytest.approx(0.02)
    body = {id(p) for p in net.backbone.body.parameters() if p.requires_grad}
    assert {id(p) for p in trunk["params"]} == body  # only the trunk's trainable ones
    frozen = [p for p in net.parameters() if not p.requires_grad]
    assert frozen and not any(id(p) in {id(q) for g in groups for q in g["params"]} for p in frozen)
    assert len(parameter_groups(net)) == 1  # multiplier 1: one group, as before


@pytest.mark.parametrize(
    "override,message",
    [
        ("budget_minutes=0", "budget_minutes=0: expected a number > 0 or null"),
        ("optimization.nominal_batch_size=0", "nominal_batch_size=0: expected an integer >= 1"),
        ("optimization.lr_scaling=cubic", "optimization.lr_scaling=cubic: expected one of"),
        (
            "model.net.pretrained=/no/such/weights.pth",
            "model.net.pretrained=/no/such/weights.pth: no such file",
        ),
    ],
)
def test_recipe_settings_are_checked_before_anything_is_made(tmp_path, override, message):
    """The CLI checks them when Hydra composes (the schema, then runs.preflight); the Python
    API, search trials and in-process runs meet the same checks: composition first, and
    run_training first thing for a config changed after it."""
    from omegaconf import OmegaConf

    from lightdet.guard import ConfigValueError
    from lightdet.runs.preflight import InputError
    from lightdet.runs.train import run_training
    from tests.conftest import compose_train

    key, value = override.split("=", 1)
    cfg = compose_train(tmp_path)
    OmegaConf.update(cfg, key, value if "/" in value else yaml_value(value))
    with pytest.raises((InputError, ConfigValueError), match=message):
        run_training(cfg)
    with pytest.raises((InputError, ConfigValueError), match=message):
        run_training(compose_train(tmp_path, override))  # at composition, or else at the start
    assert not (tmp_path / "run").exists()  # no run folder, so no task either


def yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)


def test_the_optimizer_is_fused_unless_the_config_chooses_and_updates_the_same():
    from functools import partial

    def params():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GroupNorm(2, 8))
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        return net

    fused_net, plain_net = params(), params()
    before = [p.detach().clone() for p in fused_net.parameters()]
    factory = partial(torch.optim.AdamW, lr=0.01, weight_decay=1e-4)
    fused = build_optimizer(factory, [{"params": fused_net.parameters()}])  # a generator too
    assert fused.defaults["fused"] is True
    assert len(fused.param_groups[0]["params"]) == 4  # the generator's parameters, all of them
    chosen = build_optimizer(
        partial(factory, foreach=False), [{"params": list(plain_net.parameters())}]
    )
    assert (
        not chosen.defaults["fused"] and chosen.defaults["foreach"] is False
    )  # as the config says
    for _ in range(3):
        fused.step()
        chosen.step()
    for a, b in zip(fused_net.parameters(), plain_net.parameters()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)  # the same update rule
    assert all(not torch.equal(a, b) for a, b in zip(fused_net.parameters(), before))  # moved
    # an optimizer without a fused kernel is made as it is (LBFGS takes no `fused`)
    assert build_optimizer(
        partial(torch.optim.SGD, lr=0.1), [{"params": [torch.nn.Parameter(torch.ones(2))]}]
    ).defaults["fused"]
    lbfgs = build_optimizer(
        partial(torch.optim.LBFGS, lr=0.1), [{"params": [torch.nn.Parameter(torch.ones(2))]}]
    )
    assert "fused" not in lbfgs.defaults
