"""ThreadShare: torch threads follow the cores that other processes leave free."""

import os
import subprocess
import sys
import time

import pytest
import torch

from lightdet.lightning import cpu_share
from lightdet.lightning.cpu_share import CpuClock, ThreadShare


class FakeCpu:
    """CPU seconds: the machine's advance by own + others per wall second."""

    def __init__(self, clock):
        self.clock, self.others, self.own_rate = clock, 0.0, 1.8
        self.machine_s, self.own_s, self.last = 0.0, 0.0, 0.0

    def _advance(self):
        dt = self.clock.now - self.last
        self.last = self.clock.now
        self.own_s += self.own_rate * dt
        self.machine_s += (self.own_rate + self.others) * dt

    def machine(self):
        self._advance()
        return self.machine_s

    def own(self):
        return self.own_s


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def run(share, clock, seconds, step=0.5):
    changes = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now += step
        if (count := share.tick()) is not None:
            changes.append(count)
    return changes


def test_threads_drop_at_once_and_come_back_when_two_windows_agree():
    clock = Clock()
    cpu = FakeCpu(clock)
    applied = []
    share = ThreadShare(2, window_s=2.0, clock=clock, cpu=cpu, set_threads=applied.append)
    cpu.others = 0.08  # the kernel and daemons on an idle machine
    assert run(share, clock, 10) == [] and share.threads == 2
    cpu.others = 1.1  # another run (one thread and its loader worker)
    assert run(share, clock, 2.5) == [1] and applied == [1]
    assert share.others == pytest.approx(1.1, abs=0.3)
    cpu.others = 0.05  # it ended: one window is not enough, the second agrees
    changes = run(share, clock, 2.5)
    assert changes == [] and share.threads == 1
    assert run(share, clock, 2.0) == [2] and applied == [1, 2]


def test_the_target_is_the_free_cores_at_least_one():
    share = ThreadShare(4, cpu=object(), set_threads=lambda n: None)
    assert [share.target(o) for o in (0.0, 0.2, 0.8, 1.0, 2.5, 3.9, 9.0)] == [4, 4, 3, 3, 1, 1, 1]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux's affinity mask")
def test_a_real_busy_loop_beside_this_process_takes_a_thread_away():
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core: nothing to give away")
    # another program's busy loop: not a child of this process (children count as its own)
    started = subprocess.run(
        ["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    hog = int(started.stdout.strip())
    applied = []
    try:
        time.sleep(0.5)  # the interpreter started and spins
        share = ThreadShare(cores, window_s=1.5, cpu=CpuClock(), set_threads=applied.append)
        share.tick()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            sum(range(20000))  # this process works too, and its time is not counted as others'
            share.tick()
    finally:
        os.kill(hog, 9)
    assert 0.7 <= share.others <= cores
    assert applied and applied[0] <= cores - 1


def test_own_time_includes_the_loader_workers():
    clock = CpuClock()
    before = clock.own()
    work = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    child = subprocess.Popen([sys.executable, "-c", work + "time.sleep(5)"])
    try:
        time.sleep(1.5)
        assert clock.own() - before >= 0.5
    finally:
        child.kill()
        child.wait()


def test_left_alone_where_the_count_was_chosen(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert not cpu_share.adapts()
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_share.threads, "cgroup_quota", lambda: None)
    assert cpu_share.adapts()
    monkeypatch.setattr(cpu_share.threads, "cgroup_quota", lambda: 3.0)
    assert not cpu_share.adapts()


def test_the_callback_restores_the_count_at_the_end(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_share.threads, "cgroup_quota", lambda: None)
    start = torch.get_num_threads()

    class Strategy:
        root_device = torch.device("cpu")

    class Trainer:
        strategy, world_size = Strategy(), 1

    callback = cpu_share.CpuShare(window_s=1.0)
    callback.setup(Trainer(), None, "fit")
    assert callback.share is not None and callback.share.cores == start
    torch.set_num_threads(1)
    callback.teardown(Trainer(), None, "fit")
    assert torch.get_num_threads() == start and callback.share is None
