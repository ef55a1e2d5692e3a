import math

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


def test_a_time_budget_drives_the_schedule_after_warm_up():
    """``progress`` (the fraction of a wall-clock budget used) replaces the step count: the
    cosine reaches its floor when the budget is used up, whatever the number of steps."""
    clock = {"used": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(
        opt,
        total_steps=None,
        warmup_steps=2,
        warmup_factor=0.5,
        min_lr_ratio=0.01,
        progress=lambda: clock["used"],
    )
    rates = []
    for used in (0.0, 0.0, 0.0, 0.5, 1.0, 1.7):
        clock["used"] = used
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    rates.append(opt.param_groups[0]["lr"])
    assert rates[:3] == pytest.approx([0.5, 0.75, 1.0])  # warm-up counts steps
    assert rates[3] == pytest.approx(1.0)  # (the rate for step 3 was set at used=0)
    assert rates[4] == pytest.approx(0.01 + 0.99 * 0.5)  # half the budget: half-way down
    assert rates[5:] == pytest.approx([0.01, 0.01])  # used up (and beyond): the floor


def test_a_time_budget_moves_multistep_milestones():
    clock = {"used": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_multistep(
        opt,
        total_steps=None,
        warmup_steps=0,
        milestones=(0.5, 0.8),
        gamma=0.1,
        progress=lambda: clock["used"],
    )
    rates = []
    for used in (0.2, 0.6, 0.9):
        clock["used"] = used
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([1.0, 0.1, 0.01])


def test_no_step_count_and_no_time_budget_is_an_error():
    import pytorch_lightning as pl

    from lightdet.lightning.schedulers import budget_progress

    with pytest.raises(ValueError, match="trainer.max_time"):
        budget_progress(pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False))
    trainer = pl.Trainer(max_time="00:00:01:00", logger=False, enable_checkpointing=False)
    assert budget_progress(trainer)() == 0.0  # not started: nothing used


def test_the_budget_schedule_follows_a_shortened_timer():
    """BudgetKeeper shortens the Timer after the scheduler is built (the setup and the
    validations are measured then); the schedule must end with the shortened budget. It read
    the duration once: a CI run stopped at 15 s of a 24 s max_time with the rate at 0.32 of peak."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import Timer

    from lightdet.lightning.schedulers import budget_progress

    trainer = pl.Trainer(max_time="00:00:00:24", logger=False, enable_checkpointing=False)
    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    progress = budget_progress(trainer)
    timer._offset = 15.0  # 15 s used (a resumed run's earlier time counts the same way)
    assert progress() == pytest.approx(15 / 24)
    timer._duration = 15.0  # what BudgetKeeper does once it knows what comes after training
    assert progress() == pytest.approx(1.0)


def test_a_short_run_leaves_warm_up_after_a_tenth_of_it():
    """Issue 34: warm-up was a step count (100), so a 3-minute budget that fits 20 steps
    trained at a fiftieth of the rate throughout. It now ends at 10 % of the run at most:
    of its steps, or of the budget it uses."""
    by_steps = _rates(lambda o: warmup_cosine(o, total_steps=200, warmup_steps=100), 200)
    assert by_steps[19] < 1.0 and by_steps[20] == pytest.approx(1.0, abs=1e-3)
    clock = {"used": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(
        opt, total_steps=None, warmup_steps=100, min_lr_ratio=0.01, progress=lambda: clock["used"]
    )
    rates = []
    for step in range(20):  # 20 steps use the budget: 5 % each
        rates.append(opt.param_groups[0]["lr"])
        clock["used"] = (step + 1) / 20
        opt.step()
        sched.step()
    assert rates[1] == pytest.approx(0.001 + 0.999 * 0.5, abs=1e-6)  # half of warm-up done
    cosine = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.1))
    assert rates[2] == pytest.approx(cosine)  # a tenth of the budget used: warm-up is over
    assert max(rates) > 0.9  # it trained at the full rate (it never left warm-up before)
