"""The reporting callbacks act on global rank 0 only, and only with a ClearML logger."""

from types import SimpleNamespace

from lightdet.tracking.callbacks import ClearMLModelRegistry, ClearMLReports, _clearml
from lightdet.tracking.clearml import ClearMLLogger


class ExplodingTask:
    """Any use of the task on a rank that must not report fails the test."""

    id = name = "t"

    def __getattr__(self, name):
        raise AssertionError(f"task.{name} used on a non-reporting rank")


def _trainer(rank_zero: bool, loggers):
    return SimpleNamespace(is_global_zero=rank_zero, loggers=loggers, sanity_checking=False,
                           datamodule=SimpleNamespace(), checkpoint_callback=None, global_step=3)  # fmt: skip


def test_only_global_rank_zero_with_a_clearml_logger_reports():
    logger = ClearMLLogger(ExplodingTask())
    assert _clearml(_trainer(True, [logger])) is logger
    assert _clearml(_trainer(False, [logger])) is None  # other DDP ranks
    assert _clearml(_trainer(True, [])) is None  # no ClearML logger


def test_callbacks_do_nothing_on_other_ranks():
    trainer = _trainer(False, [ClearMLLogger(ExplodingTask())])
    module = SimpleNamespace(last_evaluation={"stage": "val", "result": {}, "confusion": None},
                             class_names=["a"], hparams={})  # fmt: skip
    reports = ClearMLReports()
    reports.on_fit_start(trainer, module)
    reports.on_validation_batch_end(trainer, module, [], ([], []), 0)
    reports.on_validation_end(trainer, module)
    registry = ClearMLModelRegistry()
    registry.on_fit_end(trainer, module)
    assert reports._debug_batch is None
