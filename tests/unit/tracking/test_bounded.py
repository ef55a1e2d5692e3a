"""Calls that wait on a ClearML server are bounded: a silent server costs seconds, not hours."""

import logging
import threading
import time

import pytest

from lightdet.tracking import bounded
from lightdet.tracking.clearml import ClearMLLogger, record_classes, register_model


class SilentServerTask:
    """An online task whose server stopped answering: every call that would reach it waits
    (until released at the end of the test); what stays on this machine answers at once."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.released = threading.Event()
        self.calls: list[str] = []

    def is_offline(self) -> bool:
        return False

    def _wait(self, name: str):
        self.calls.append(name)
        self.released.wait(60)

    def set_model_label_enumeration(self, *args, **kwargs):
        self._wait("set_model_label_enumeration")

    def flush(self, wait_for_uploads=False):
        self._wait(f"flush(wait_for_uploads={wait_for_uploads})")

    def close(self):
        self._wait("close")

    def get_logger(self):
        outer = self

        class Reporter:
            def report_scalar(self, *args, **kwargs):
                outer.calls.append("report_scalar")

        return Reporter()


@pytest.fixture
def silent_task():
    task = SilentServerTask(f"silent-{time.monotonic_ns()}")
    bounded.watch(task, call=0.3, upload=0.6)
    yield task
    task.released.set()


def test_within_returns_the_value_raises_the_error_and_bounds_the_wait():
    assert bounded.within(1.0, lambda a, b=0: a + b, 2, b=3, what="adding") == 5
    with pytest.raises(KeyError, match="k"):
        bounded.within(1.0, {}.__getitem__, "k", what="looking up")
    release = threading.Event()
    began = time.monotonic()
    with pytest.raises(bounded.NoAnswer, match=r"waiting: no answer within 0.2 s"):
        bounded.within(0.2, release.wait, 30, what="waiting")
    assert time.monotonic() - began < 2
    release.set()


def test_a_silent_server_is_given_up_once_and_the_run_goes_on(silent_task, caplog):
    caplog.set_level(logging.WARNING, logger="lightdet.tracking.bounded")
    logger = ClearMLLogger(silent_task)
    logger.log_metrics({"train/loss": 1.0}, step=1)  # queued locally: answers at once
    assert silent_task.calls == ["report_scalar"]

    began = time.monotonic()
    record_classes(silent_task, ["circle", "square"], {1: 1, 2: 2})
    assert 0.3 <= time.monotonic() - began < 2  # its bound, not ClearML's hours of retries
    assert bounded.lost(silent_task)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "recording the class list got no answer from the server within 0.3 s" in warnings[0]
    assert "logger.clearml.call_timeout" in warnings[0]

    # from now on nothing waits on it, and nothing is sent: one warning in all
    began = time.monotonic()
    logger.log_metrics({"train/loss": 0.5}, step=2)
    logger.finalize("success")
    model = register_model(
        silent_task,
        "unused.pt",
        name="m best",
        class_names=["circle"],
        config={},
        metrics={},
        iteration=2,
    )
    assert model is None and time.monotonic() - began < 0.2
    assert silent_task.calls == ["report_scalar", "set_model_label_enumeration"]
    assert len(caplog.records) == 1


def test_an_upload_that_never_ends_is_bounded_by_the_upload_bound(silent_task, caplog):
    caplog.set_level(logging.WARNING, logger="lightdet.tracking.bounded")
    began = time.monotonic()
    ClearMLLogger(silent_task).finalize("success")  # flush, waiting for uploads
    assert 0.6 <= time.monotonic() - began < 2
    assert silent_task.calls == ["flush(wait_for_uploads=True)"]
    assert "flushing reports and uploads" in caplog.text and "upload_timeout" in caplog.text


def test_close_is_bounded_and_a_lost_task_still_gets_its_close_started(
    silent_task, caplog, monkeypatch
):
    caplog.set_level(logging.WARNING, logger="lightdet.tracking.bounded")
    monkeypatch.setattr(bounded, "_AFTER_LOSS", 0.5)
    began = time.monotonic()
    bounded.close(silent_task)
    assert 0.6 <= time.monotonic() - began < 2
    assert silent_task.calls == ["close"] and "closing the task" in caplog.text

    other = SilentServerTask(f"lost-{time.monotonic_ns()}")
    bounded.watch(other, call=0.1, upload=100.0)
    try:
        bounded.send(other, "recording", other.flush)  # lost here
        began = time.monotonic()
        bounded.close(other)  # started (ClearML's exit hook then skips it), waited on briefly
        assert time.monotonic() - began < bounded._AFTER_LOSS + 1
        assert other.calls == ["flush(wait_for_uploads=False)", "close"]
        assert not bounded.lost(other)  # forgotten once closed
    finally:
        other.released.set()


def test_an_offline_task_is_called_directly(tmp_path):
    class OfflineTask:
        id = "offline-1"
        thread = None

        def is_offline(self):
            return True

        def close(self):
            OfflineTask.thread = threading.current_thread()

    task = OfflineTask()
    bounded.watch(task, call=0.1, upload=0.1)
    assert bounded.send(task, "adding", lambda: 1 + 1) == 2
    bounded.close(task)
    assert OfflineTask.thread is threading.main_thread()
