"""Hyperparameter search: ``make hpo [HPO=focal_lr]`` or ``python -m lightdet.hpo hpo=<space>``.

With a reachable ClearML server (``backend=auto`` or ``clearml``): ClearML's optimizer with
Optuna clones a base training task. Otherwise (``local``): an Optuna study in a file, each trial a
training run in this process. Both write the best configuration, a trials table and plots. The
run itself is :func:`lightdet.runs.hpo.run_search`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lightdet.cli import hydra_entry
from lightdet.runs.preflight import tracked


@hydra_entry("hpo", preflight=tracked)
def main(cfg: DictConfig) -> dict:
    # the command's body (torch, Lightning) loads once the guard has accepted the config:
    # a refused command answers in about 2 s instead of 9
    from lightdet.runs.hpo import run_search

    return run_search(cfg)


if __name__ == "__main__":
    main()
