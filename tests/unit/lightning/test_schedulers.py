import pytest
import torch

from lightdet.lightning.schedulers import warmup_cosine, warmup_multistep


def _rates(make, steps):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def test_warmup_then_cosine_to_floor():
    r = _rates(
        lambda o: warmup_cosine(
            o, total_steps=100, warmup_steps=10, warmup_factor=0.1, min_lr_ratio=0.01
        ),
        100,
    )
    assert r[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(r[:10], r[1:11]))  # rising during warm-up
    assert r[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(r[10:], r[11:]))  # then never rising
    assert r[-1] == pytest.approx(0.01, abs=1e-3)


def test_multistep_decays_at_fractions_of_the_run():
    r = _rates(
        lambda o: warmup_multistep(
            o, total_steps=100, warmup_steps=5, milestones=(0.5, 0.8), gamma=0.1
        ),
        100,
    )
    assert r[10] == pytest.approx(1.0) and r[49] == pytest.approx(1.0)
    assert r[50] == pytest.approx(0.1) and r[80] == pytest.approx(0.01)


def test_warmup_longer_than_the_run_is_clamped():
    r = _rates(lambda o: warmup_cosine(o, total_steps=5, warmup_steps=500), 5)
    assert max(r) == pytest.approx(1.0, abs=0.05) or r[-1] < 1.0
    assert all(x > 0 for x in r)
