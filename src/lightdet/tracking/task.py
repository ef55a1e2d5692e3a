"""One ClearML task lifecycle for every run: created on global rank 0, closed whatever happens.

Every command (train, evaluate, a search's summary) records into one task; the task is closed
in a ``finally``, so its record (scalars so far, the status) is kept when a run fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lightdet.lightning.ranks import is_global_zero
from lightdet.outputs import SESSION_NOTE


def _note_session(cfg: DictConfig, task) -> None:
    """An offline task's session folder, named in the run folder (``clearml_session.txt``), so
    that ``make clean`` can remove the sessions of the runs it removes."""
    try:
        folder = OmegaConf.select(cfg, "paths.output_dir", default=None)
    except Exception:  # composed outside a Hydra app: no run folder to note it in
        return
    if folder and Path(folder).is_dir() and task.is_offline():
        (Path(folder) / SESSION_NOTE).write_text(f"{task.get_offline_mode_folder()}\n")


@contextlib.contextmanager
def clearml_task(
    cfg: DictConfig, *, bind_hydra: bool = True, task=None, continue_task: str | None = None
) -> Iterator:
    """``with clearml_task(cfg) as task:`` the run's task (None on other ranks), closed on exit.

    Args:
        cfg: the run config (``logger.clearml`` says where and how to record).
        bind_hydra: see :func:`lightdet.tracking.clearml.init_task`.
        task: a task that exists already (ClearML's optimizer's own), to be closed the same way.
        continue_task: the id of a stopped run's task, to report into again (a resumed run).
    """
    if task is None and is_global_zero():
        from lightdet.tracking.clearml import init_task  # the SDK only where a task is made

        task = init_task(cfg, bind_hydra=bind_hydra, continue_task=continue_task)
        _note_session(cfg, task)
    try:
        yield task
    finally:
        if task is not None:
            from lightdet.tracking import bounded

            bounded.close(task)  # bounded: a server that stopped answering cannot hang the exit
