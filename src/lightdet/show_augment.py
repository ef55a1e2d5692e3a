"""Look at the training augmentation: ``make show-augment [AUG=zoom]``.

Writes a grid image: one row per training image, the original (as evaluated) first, then
``repeats`` augmented draws with their boxes, exactly as the model receives them. The run
itself is :func:`lightdet.runs.show_augment.show_augment`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lightdet.cli import hydra_entry
from lightdet.runs.preflight import data_only


@hydra_entry("show_augment", preflight=data_only)
def main(cfg: DictConfig) -> None:
    # the command's body (torch, Lightning) loads once the guard has accepted the config:
    # a refused command answers in about 2 s instead of 9
    from lightdet.runs.show_augment import show_augment

    show_augment(cfg)


if __name__ == "__main__":
    main()
