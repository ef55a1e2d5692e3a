"""What every Hydra entry point shares: the config folder, the guard inside Hydra's composition,
the credential scrubber on every log handler, and a run folder marked as lightdet's.

Entry points use :func:`hydra_entry` instead of ``hydra.main``; importing this module installs
the composition guard, so ``hydra.compose`` in the same process is guarded too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lightdet import outputs
from lightdet.guard import hydra_guard
from lightdet.guard.secrets import install_log_scrubber

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
hydra_guard.install()


def hydra_entry(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """``@hydra.main`` on ``conf/<config_name>.yaml``, guarded (see :mod:`lightdet.guard`)."""

    def decorate(task_function: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task_function)
        def run(cfg: DictConfig) -> Any:
            install_log_scrubber()  # Hydra configured the handlers just before this call
            # checked to be new, empty or lightdet's by the composition guard
            outputs.mark(HydraConfig.get().runtime.output_dir, "run")
            return task_function(cfg)

        return hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(
            run
        )

    return decorate


def is_global_zero() -> bool:
    """Global rank 0, before the Trainer exists. torchrun and SLURM set RANK / SLURM_PROCID;
    Lightning's own launcher sets only LOCAL_RANK and NODE_RANK for the processes it starts."""
    ranks = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
    return all(int(os.environ.get(key, 0)) == 0 for key in ranks)
