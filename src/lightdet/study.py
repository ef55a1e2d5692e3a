"""Studies: ``make compare MODELS="retinanet ssd"``, ``make study STUDY=focal``, or
``python -m lightdet.study -m study=<name> [cell=a,b] [model=...] [overrides]``.

A Hydra multirun: each job trains one cell of ``conf/study/<name>.yaml`` (or reuses it), and
the report at the end measures latency and writes the table and plots. See
:mod:`lightdet.runs.study`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lightdet.cli import hydra_entry
from lightdet.runs.preflight import training


@hydra_entry("study", preflight=training)
def main(cfg: DictConfig) -> dict:
    # the command's body (torch, Lightning) loads once the guard has accepted the config:
    # a refused command answers in about 2 s instead of 9
    from lightdet.runs.study import run_cell

    return run_cell(cfg)


if __name__ == "__main__":
    main()
