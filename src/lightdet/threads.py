"""Threads within a container's CPU quota, set before torch loads.

OpenMP takes the cores in the process's affinity mask but not a container's CPU quota (cgroup
``cpu.max``), so a job limited to 2 CPUs of a 64-core host started 64 threads, each waiting for
the others at every operator. Where a quota is tighter than the mask, :func:`apply` sets
``OMP_NUM_THREADS`` to it. OpenMP reads its environment once, when torch's library loads, so
:func:`apply` runs from ``lightdet/__init__.py``, before any lightdet module imports torch; a
process that imported torch first keeps torch's count. A count already chosen (by the user, or
a launcher such as joblib's, which gives each of its workers ``cores // n_jobs``) is kept.

OpenMP's wait policy is left as torch has it: sleeping threads (``OMP_WAIT_POLICY=PASSIVE``)
trained 0.70x as fast alone on the development machine, and a run beside other work is helped
by fewer threads instead (:mod:`lightdet.lightning.cpu_share`; ``benchmarks/cpu_sharing.py``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (
    Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def affinity_cores() -> int:
    """The cores this process may run on (its affinity mask; all of them where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cgroup_quota(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> float | None:
    """CPUs' worth of time a container's quota allows (``cpu.max`` 200000 100000: 2.0), or None."""
    try:
        quota, period = v2.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = v1[0].read_text().strip(), v1[1].read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        share = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return share if share > 0 else None


def available_cores() -> int:
    """Whole cores this process may use: its affinity mask, capped by a container's quota."""
    cores = affinity_cores()
    quota = cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Under a quota tighter than the affinity mask, ``OMP_NUM_THREADS`` = the quota's cores.

    Returns the variables it set. Does nothing once torch is imported (OpenMP has read its
    environment by then) or where a count was chosen.
    """
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or count_chosen(environ):
        return {}
    cores = available_cores()
    chosen = {"OMP_NUM_THREADS": str(cores)} if cores < affinity_cores() else {}
    environ.update(chosen)
    return chosen


def count_chosen(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether the thread count was chosen (by the user, a launcher or a quota): keep it then."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
