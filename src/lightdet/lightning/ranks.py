"""Which process this is in a multi-process run, known before the Trainer exists."""

from __future__ import annotations

import os


def is_global_zero() -> bool:
    """Global rank 0, before the Trainer exists. torchrun and SLURM set RANK / SLURM_PROCID;
    Lightning's own launcher sets only LOCAL_RANK and NODE_RANK for the processes it starts."""
    ranks = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
    return all(int(os.environ.get(key, 0)) == 0 for key in ranks)
