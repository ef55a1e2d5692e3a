"""Preemption and resume: a checkpoint on SIGTERM/SIGINT, and resuming mid-epoch exactly.

Behaviour for the partly seen epoch: the training order of every epoch is a seeded permutation
(the same after a restart), and the checkpoint records how many batches of the current epoch were
trained. Resuming continues that epoch with the batches not yet seen: no batch is replayed and
none is lost, so an interrupted run ends at the same step and epoch as an uninterrupted one.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, DistributedSampler


class EpochSampler(DistributedSampler):
    """A seeded shuffle per epoch (sharded under DDP, one shard otherwise) that can start at an
    offset within its epoch: the offset is set by :class:`ResumableDataLoader` on resume."""

    def __init__(self, dataset, *, seed: int, drop_last: bool = True) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(
            dataset,
            num_replicas=None if distributed else 1,
            rank=None if distributed else 0,
            shuffle=True,
            seed=seed,
            drop_last=drop_last,
        )
        self.start = 0  # samples of this epoch already trained on (this process's shard)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)

    def __iter__(self):
        return iter(list(super().__iter__())[self.start :])


class ResumableDataLoader(DataLoader):
    """A training loader whose position in the epoch is saved in checkpoints.

    Lightning saves ``state_dict()`` of a loader that has one, and calls ``load_state_dict`` on
    resume before creating the iterator. The position comes from the trainer (``progress``:
    ``(epoch, batches trained in it)``), not from the iterator, which runs ahead by its prefetch.
    """

    progress: Callable[[], tuple[int, int]] | None = None

    def state_dict(self) -> dict:
        epoch, batches = self.progress() if self.progress is not None else (0, 0)
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict) -> None:
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):
            return
        epoch, batches = state["epoch"], state["batches"]
        sampler.set_epoch(epoch)
        sampler.start = batches * (self.batch_size or 1)
        rank_zero_info(f"resume: epoch {epoch} continues after {batches} trained batches")


class ResumeCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` (the full training state) at the end of every training epoch, and
    when SIGTERM (preemption) or Ctrl+C stops the run after its current batch.

    Lightning already turns SIGTERM into a stop after the current batch; this makes the first
    SIGINT do the same (a second one interrupts at once). ``train()`` then exits with
    128 + the signal number. (ModelCheckpoint's own ``save_last`` writes only when the monitored
    score improved, so it is not the state to resume from.) Being a ``Checkpoint``, it runs after
    the other callbacks, so the saved state includes their updates for the epoch.

    Args:
        dirpath: where to write (default: the ModelCheckpoint's folder).
        filename: checkpoint file name without ``.ckpt``; ``last`` is what ``ckpt_path=auto``
            resumes from.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last") -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.last_path: str | None = None
        self.signal: int | None = None
        self._previous_sigint = None
        # stopped during an epoch's validation: the resumed run validates that epoch again
        self.pending_validation = False
        self._revalidated = False  # this (resumed) epoch's validation was run again at its start
        # the run's ClearML task, so that a resumed run reports into it (set by training)
        self.task_id: str | None = None

    def state_dict(self) -> dict:
        return {"pending_validation": self.pending_validation, "clearml_task_id": self.task_id}

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending_validation = bool(state_dict.get("pending_validation", False))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        def graceful(signum, frame):
            rank_zero_info("interrupt: stopping after this batch (again to stop at once)")
            signal.signal(signal.SIGINT, self._previous_sigint or signal.default_int_handler)
            self.signal = signal.SIGINT
            trainer._signal_connector.received_sigterm = True  # the same graceful path

        try:
            self._previous_sigint = signal.signal(signal.SIGINT, graceful)
        except ValueError:  # not the main thread: keep the default behaviour
            self._previous_sigint = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _load_pending_loader_state(trainer)
        # stopped in a validation: that epoch's training batches were all done, so its weights
        # are final; validate before the epoch ends, where the best checkpoint is decided
        if self.pending_validation:
            self.pending_validation = False
            self._validate_again(trainer)
            self._revalidated = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._revalidated:
            # the resumed epoch had no batch left, so Lightning's epoch loop never ran an
            # iteration, which is where it stops "restarting": the next epoch would then keep
            # this one's batch count and train nothing. End the restart as an iteration would.
            self._revalidated = False
            trainer.fit_loop.epoch_loop.on_iteration_done()
        if not trainer.sanity_checking and not trainer.fast_dev_run:
            self._save(trainer)

    @staticmethod
    def _validate_again(trainer: pl.Trainer) -> None:
        """The validation a stop interrupted, from its first batch (its metric states were not
        saved): Lightning resumes the epoch with every training batch done and would end it,
        and with the last epoch the run, without validating; the best checkpoint, the
        results and the metrics would then miss that epoch."""
        rank_zero_info(
            f"resume: epoch {trainer.current_epoch}'s validation was interrupted; "
            "validating it again"
        )
        val_loop = trainer.fit_loop.epoch_loop.val_loop
        val_loop.restarting = False  # from the first batch, not where it was stopped
        trainer.validating = True  # as Lightning's training epoch loop runs its validation
        val_loop.run()
        trainer.training = True

    def _save(self, trainer: pl.Trainer) -> Path:
        path = Path(self.dirpath or _checkpoint_dir(trainer)) / f"{self.filename}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # the full state, optimizer included
        self.last_path = str(path)
        return path

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()
        if self.last_path and trainer.is_global_zero:  # ended (epochs, steps, budget, early
            # stop), not stopped: ckpt_path=auto passes this run over
            finished_marker(self.last_path).write_text(
                f'{{"finished_at_step": {trainer.global_step}}}\n'
            )

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, KeyboardInterrupt):  # a second Ctrl+C: maybe mid-step, so the
            self.signal = signal.SIGINT  # state may be half-updated; keep the last good one
            rank_zero_info("interrupted at once: no checkpoint written (last.ckpt: last epoch)")
            return
        if not isinstance(exception, SIGTERMException):
            return
        self.signal = self.signal or signal.SIGTERM
        self.pending_validation = bool(trainer.validating)  # saved with the checkpoint
        path = self._save(trainer)
        rank_zero_info(
            f"{signal.Signals(self.signal).name}: checkpoint at step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}) written to {path}; resume with ckpt_path=auto"
        )

    def _restore(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None


def _load_pending_loader_state(trainer: pl.Trainer) -> None:
    """Give the training loader its saved position, then restart its iterator.

    Lightning skips this when ``trainer.estimated_stepping_batches`` (our schedulers' length)
    built the loader before the checkpoint was restored (Lightning issue #20550), and after an
    end-of-epoch checkpoint (not a "restart" to Lightning): the saved position would be dropped
    and the resumed epoch would draw another permutation. The iterator made before the restore
    has already read the sampler (its workers prefetch), so it is made again.
    """
    fit_loop = trainer.fit_loop
    states = getattr(fit_loop, "_combined_loader_states_to_load", None)
    if not states or fit_loop._combined_loader is None:
        return
    fit_loop._combined_loader._load_state_dicts(states)
    fit_loop._combined_loader_states_to_load = []
    if fit_loop._data_fetcher is not None:
        iter(fit_loop._data_fetcher)


def _checkpoint_dir(trainer: pl.Trainer) -> str:
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.dirpath:
        return ckpt.dirpath
    return str(Path(trainer.default_root_dir) / "checkpoints")


def finished_marker(checkpoint: str | Path) -> Path:
    """The file beside ``last.ckpt`` that says its run ended rather than stopped."""
    path = Path(checkpoint)
    return path.with_name(path.name + ".finished")


def find_last_checkpoint(
    runs_dir: str | Path, filename: str = "last.ckpt", data: dict | None = None
) -> Path:
    """The newest checkpoint to resume under ``runs_dir`` (the runs of one task name): the
    newest ``checkpoints/last.ckpt`` of a run that stopped before its end (preempted,
    interrupted, crashed), trained on ``data`` (the data source config, when given), and whole
    and resumable; else the next newest. Each one passed over is named in a warning: a run
    that ended, a run on other data, a truncated or damaged file (a kill during a write by an
    older lightdet, a full disk), one without a training state (weights only, empty).

    Raises:
        FileNotFoundError: naming the folder searched, when there is none to resume.
    """
    from lightdet.guard.checkpoints import (
        BadCheckpointFileError,
        UnsafeCheckpointError,
        inspect_checkpoint,
    )

    runs = Path(runs_dir)
    found = list(runs.glob(f"*/checkpoints/{filename}"))
    if found:  # the others, only as fall-backs, and only full ones (best-*.ckpt: weights only)
        found += [p for p in runs.glob("*/checkpoints/*.ckpt") if p.name != filename]
    candidates = sorted(found, key=lambda p: (p.stat().st_mtime, p.name == filename), reverse=True)
    for candidate in candidates:
        try:
            facts = inspect_checkpoint(candidate)  # read once: the run asks it again
        except BadCheckpointFileError as err:
            rank_zero_warn(f"ckpt_path=auto: skipped {err}")
            continue
        except UnsafeCheckpointError:  # never passed over quietly: refused, with why, at load
            if candidate.name == filename:
                return candidate
            continue
        if not facts.resumable:
            if candidate.name == filename:  # a best-*.ckpt is weights only by design: no word
                rank_zero_warn(f"ckpt_path=auto: skipped {candidate}: no training state to resume")
            continue
        why = _passed_over(candidate, facts, data)
        if why is None:
            return candidate
        rank_zero_warn(f"ckpt_path=auto: skipped {candidate}: {why}")
    raise FileNotFoundError(
        f"ckpt_path=auto: no {'complete checkpoint' if candidates else filename} of a run "
        f"that stopped before its end{' on this data' if data else ''} under "
        f"{runs_dir}/*/checkpoints/ (nothing to resume for this task_name)"
    )


def _passed_over(candidate: Path, facts, data: dict | None) -> str | None:
    """Why a whole, resumable checkpoint is not the one to resume, or None."""
    if finished_marker(candidate).exists():
        return "its run ended (nothing to resume)"
    stored = (facts.data or {}).get("source") if data is not None else None
    if data is not None and stored != data:
        return "trained on other data (data.source differs)"
    return None
