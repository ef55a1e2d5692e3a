"""Training on a CPU that other work shares: as many torch threads as cores the others leave free.

Every torch operator splits its work over all its threads and waits for the slowest. Where
other processes keep the cores busy, one of a run's threads is often descheduled, and the
others wait a scheduler slice (milliseconds) for it, thousands of times a step: two default
runs on the 2 cores of the development machine each ran at 0.05-0.08x of their speed alone,
sleeping or spinning threads alike, and one run beside a single busy loop at 0.2-0.3x. With one
thread each, two runs kept 0.9x of a one-thread run alone. The cores free for this run are what
the machine's busy time leaves after this process and its loader workers (measured per core
of the affinity mask, so other work elsewhere on a large host does not count):
:class:`ThreadShare` measures that every couple of seconds and sets ``torch.set_num_threads``
to it (fewer at once, more only when two windows in a row agree), so a run alone keeps all its
cores and two runs settle on a share each (``benchmarks/cpu_sharing.py``).

Left alone where the thread count was chosen (``OMP_NUM_THREADS``: by the user, or joblib's
launcher giving each parallel job its share), under a container's CPU quota (the quota sets it,
:mod:`lightdet.threads`), and on GPUs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

import psutil
import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from lightdet import threads

log = logging.getLogger(__name__)

WINDOW_S = 2.0
# a core counts as free when less than this much of it is used by others (the measurement
# includes the kernel's and other daemons' bits: a machine at rest shows 0.02-0.1 core)
SLACK = 0.3


def _busy(cpu: psutil._common.scputimes) -> float:
    return sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0)


class CpuClock:
    """Seconds of CPU time: on the cores this process may use, and used by it and its children."""

    def __init__(self) -> None:
        self.cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.process = psutil.Process()

    def machine(self) -> float:
        per_cpu = psutil.cpu_times(percpu=True)
        cores = self.cores if self.cores is not None else range(len(per_cpu))
        return sum(_busy(per_cpu[i]) for i in cores if i < len(per_cpu))

    def own(self) -> float:
        total = sum(self.process.cpu_times()[:2])
        for child in self.process.children(recursive=True):  # the loader workers
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:  # ended since listed
                pass
        return total


class ThreadShare:
    """Sets torch's thread count to the cores the other processes leave free, as they change.

    Args:
        cores: the most threads (the cores this process may use).
        window_s: seconds between measurements.
        clock: wall clock; ``cpu``: the CPU clock (:class:`CpuClock`); ``set_threads``: what
            applies a count (``torch.set_num_threads``). Injected in tests.
    """

    def __init__(
        self,
        cores: int,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        cpu: CpuClock | None = None,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.cores = cores
        self.window_s = window_s
        self.clock = clock
        self.cpu = cpu or CpuClock()
        self.set_threads = set_threads
        self.threads = cores
        self.others = 0.0  # cores other processes used in the last window
        self._start: tuple[float, float, float] | None = None
        self._pending_raise: int | None = None

    def target(self, others: float) -> int:
        """Threads for a window in which other processes used ``others`` cores."""
        free = self.cores - others
        return max(1, min(self.cores, math.floor(free + SLACK)))

    def tick(self) -> int | None:
        """Call once a step: the new thread count when it changed, else None."""
        now = self.clock()
        if self._start is None:
            self._start = (now, self.cpu.machine(), self.cpu.own())
            return None
        started, machine0, own0 = self._start
        if now - started < self.window_s:
            return None
        machine, own = self.cpu.machine(), self.cpu.own()
        self._start = (now, machine, own)
        others = max(0.0, ((machine - machine0) - (own - own0)) / (now - started))
        self.others = others
        return self._apply(self.target(others))

    def _apply(self, target: int) -> int | None:
        if target > self.threads and self._pending_raise != target:
            self._pending_raise = target  # more threads only when the next window agrees
            return None
        self._pending_raise = None
        if target == self.threads:
            return None
        self.threads = target
        self.set_threads(target)
        return target


def adapts() -> bool:
    """Whether the thread count is lightdet's to adapt (not chosen by the user or a quota)."""
    return not threads.count_chosen() and threads.cgroup_quota() is None


class CpuShare(Callback):
    """:class:`ThreadShare` over a CPU run's training and validation steps.

    Args:
        window_s: seconds between measurements of the other processes' use.
    """

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.share: ThreadShare | None = None
        self.changes: list[int] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        on_cpu = trainer.strategy.root_device.type == "cpu"
        if on_cpu and adapts() and trainer.world_size == 1:
            self.share = ThreadShare(torch.get_num_threads(), window_s=self.window_s)

    def _tick(self) -> None:
        if self.share is not None and (count := self.share.tick()) is not None:
            self.changes.append(count)
            log.info(
                "cpu: other work used %.1f of %d cores; torch threads now %d",
                self.share.others,
                self.share.cores,
                count,
            )

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self._tick()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self._tick()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.share is not None:
            torch.set_num_threads(self.share.cores)  # the process goes on as it started
            self.share = None
