"""Train a detector: ``python -m lightdet.train model=retinanet [overrides]`` (or ``make train``).

Returns the ``optimized_metric`` (default ``val/map``, best over the run) for hyperparameter
search. The run itself is :func:`lightdet.runs.train.run_training`; from Python, call
``lightdet.train(overrides=[...])``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lightdet.cli import callable_module, hydra_entry
from lightdet.runs.preflight import training


@hydra_entry("train", preflight=training)
def main(cfg: DictConfig) -> float | None:
    # the command's body (torch, Lightning) loads once the guard has accepted the config:
    # a refused command answers in about 2 s instead of 9
    from lightdet.runs.train import run_training

    return run_training(cfg).best


callable_module(__name__, "lightdet.runs.compose", "train")

if __name__ == "__main__":
    main()
