"""ClearML calls that wait on the server, each bounded in time.

ClearML's client retries a call that gets no answer for hours (240 tries with back-off, each
waiting up to 300 s), and a server can answer its ping and login and then stop answering, or
stop in the middle of a run. Every call lightdet makes that waits on the server (task creation,
recording the config and classes, model uploads, flushing, closing) therefore runs in a
daemon thread that is waited on for at most its bound. Past the bound the thread is left
behind (it cannot be interrupted; a daemon does not hold up the exit), the task is marked as
having lost its server, one warning says so, and every later call for it is skipped: the run
goes on, and its local outputs (checkpoints, reports, plots) are complete.

An offline task writes to disk only: its calls run directly, unbounded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CALL, UPLOAD = "call", "upload"
_BOUNDS: dict[str, dict[str, float]] = {}  # task id -> {CALL: seconds, UPLOAD: seconds}
_LOST: dict[str, str] = {}  # id of a task whose server stopped answering -> the unanswered call
_AFTER_LOSS = 5.0  # seconds a lost task's close may take: ClearML's exit hook must be disarmed


class NoAnswer(TimeoutError):
    """A ClearML call did not finish within its bound."""


def within(seconds: float, fn: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a daemon thread, waited on for at most ``seconds``.

    Returns its result or raises its exception; raises :class:`NoAnswer` past the bound.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # handed to the caller, whatever it is
            outcome["error"] = err

    thread = threading.Thread(target=run, name=f"clearml: {what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise NoAnswer(f"{what}: no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def watch(task, *, call: float, upload: float) -> None:
    """Bound the calls made for ``task`` from now on: ``call`` seconds for recording calls,
    ``upload`` seconds for model uploads, flushing and closing."""
    _BOUNDS[str(task.id)] = {CALL: float(call), UPLOAD: float(upload)}


def lost(task) -> bool:
    """Whether ``task``'s server stopped answering during this run."""
    return task is not None and str(task.id) in _LOST


def lost_at(task) -> str | None:
    """The call ``task``'s server left unanswered (None while it answers): what the run's
    summary names, since nothing from then on reached the server."""
    return None if task is None else _LOST.get(str(task.id))


def send(task, what: str, fn: Callable, *args: Any, kind: str = CALL, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, a call that may wait on ``task``'s server, within its bound.

    Skipped (None) when there is no task or its server was lost already. Past the bound, the
    task is marked lost and a warning names the call, the bound, and what happens now.
    """
    if task is None or lost(task):
        return None
    bounds = _BOUNDS.get(str(task.id))
    if bounds is None or task.is_offline():
        return fn(*args, **kwargs)
    try:
        return within(bounds[kind], fn, *args, what=what, **kwargs)
    except NoAnswer:
        _LOST[str(task.id)] = what
        log.warning(
            "ClearML: %s got no answer from the server within %g s; the rest of this run is not "
            "sent to ClearML (training goes on; checkpoints and reports are written locally). "
            "Raise logger.clearml.%s_timeout if the server is only slow.",
            what,
            bounds[kind],
            kind,
        )
        return None


def close(task) -> None:
    """Close ``task`` (it flushes and waits for pending uploads) within the upload bound.

    A task whose server is lost gets a few seconds only: the close must still be started, or
    ClearML's exit hook would try it again, unbounded, when the process ends.
    """
    bounds = _BOUNDS.pop(str(task.id), None)
    if bounds is None or task.is_offline():
        task.close()
        return
    was_lost = lost(task)
    seconds = _AFTER_LOSS if was_lost else bounds[UPLOAD]
    try:
        within(seconds, task.close, what="closing the task")
    except NoAnswer:
        if not was_lost:
            log.warning(
                "ClearML: closing the task (it waits for pending uploads) got no answer within "
                "%g s; its record on the server may be incomplete. The run's local outputs are "
                "complete.",
                seconds,
            )
    finally:
        _LOST.pop(str(task.id), None)
