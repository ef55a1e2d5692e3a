"""ClearML task set-up and a Lightning logger that reports to it.

``init_task`` runs inside the Hydra main function, so ClearML's Hydra binding records the
command-line overrides under ``Hydra/`` and the full config as the ``OmegaConf`` configuration. We
add every other leaf of the config to ``Hydra/`` too, written as Hydra override values: a task
cloned in the dashboard with any value edited (``Hydra/model.net.focal_alpha``) is re-run by a
``clearml-agent`` with that value, because the binding re-applies each ``Hydra/*`` entry as an
override before composing the config.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# isort: off
import hydra  # noqa: F401  # must precede clearml: its Hydra binding patches Hydra at import time
from clearml import OutputModel, Task
from clearml.config import running_remotely

# isort: on
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from lightdet import quiet
from lightdet.data.classes import label_enumeration
from lightdet.guard.secrets import scrub, scrub_text, secret_values
from lightdet.overrides import HYDRA_SECTION, hydra_overrides
from lightdet.tracking import bounded
from lightdet.tracking.remote import check_applied
from lightdet.tracking.server import (
    api_host,
    model_destination,
    offline_requested,
    server_available,
    server_configured,
    server_reachable,
    shown_host,
)

log = logging.getLogger(__name__)


def init_task(cfg: DictConfig, bind_hydra: bool = True, continue_task: str | None = None):
    """Create the run's ClearML task (offline when no server is configured) and record the config.

    Call inside the ``@hydra.main`` function, on global rank 0 only. ``bind_hydra=False`` for a
    config composed in-process (search trials): ClearML's binding would record the enclosing
    Hydra app's overrides instead, so the full config is recorded here. ``continue_task``: a
    stopped run's task id; the resumed run reports into that task (its curves continue at the
    same steps), when it is of the same kind (offline or not) and still there.
    """
    opts = cfg.logger.clearml
    offline = not server_available(opts)
    if offline and not offline_requested(opts.get("offline")):
        log.warning(
            "ClearML: server %s is not reachable; training goes on and is recorded offline.",
            shown_host(),
        )
    if offline:
        _go_offline()
    Task.set_random_seed(cfg.get("seed"))  # Task.init seeds every generator: with ours, not 1337
    # ClearML detects the git repository in a thread that races with Task.connect for the task's
    # edit lock: both can create one file lock for the same task, and each then waits on the
    # other forever (seen once in about ten test-suite runs, in `make compare`'s parallel jobs;
    # sdk.development.vcs_repo_detect_async is ClearML's switch). Detecting before Task.init
    # returns cost no measurable time here (a tiny run: 8.8-10.0 s either way).
    Task._Task__detect_repo_async = False
    # ClearML records the command line as the task's entry point: no credential in it. (The
    # config is scrubbed already; Lightning's DDP children, started from sys.argv, agree.)
    sys.argv[:] = scrub(sys.argv)
    call_timeout = float(opts.get("call_timeout", 60.0))
    continued = _continuable(continue_task, offline)
    try:
        task = (
            _create_task(cfg, bind_hydra, continued)
            if offline
            else bounded.within(
                call_timeout, _create_task, cfg, bind_hydra, continued, what="creating the task"
            )
        )
    except bounded.NoAnswer:  # a server that answers its login, then nothing
        log.warning(
            "ClearML: server %s answered its login, but creating the task got no answer within "
            "%g s; training goes on and is recorded offline.",
            shown_host(),
            call_timeout,
        )
        offline = True
        _go_offline()
        task = _create_task(cfg, bind_hydra, _continuable(continue_task, offline))
    bounded.watch(task, call=call_timeout, upload=float(opts.get("upload_timeout", 600.0)))
    queue = opts.get("remote_queue")
    if queue:
        if offline:
            raise RuntimeError("logger.clearml.remote_queue needs a reachable ClearML server")
        log.warning("ClearML: enqueued to %r for a clearml-agent; this process exits.", queue)
        task.execute_remotely(queue_name=queue, exit_process=True)  # a no-op under the agent
    if offline:
        log.info(
            "ClearML: no server configured, recording offline in %s. Import it later with "
            "`make clearml-import SESSION=<that folder or its .zip>`.",
            task.get_offline_mode_folder(),
        )
    return task


def _go_offline() -> None:
    Task.set_offline(offline_mode=True)
    # the reporting subprocess buys nothing without a server and makes close() take ~10 s
    Task._report_subprocess_enabled = False


def _continuable(task_id: str | None, offline: bool) -> str | None:
    """``task_id`` when this run can report into it: an offline session still on disk when
    recording offline, a server task when recording online; otherwise None, said once."""
    if not task_id:
        return None
    from clearml.config import get_offline_dir

    was_offline = task_id.startswith("offline-")
    if offline and was_offline and get_offline_dir(task_id).is_dir():
        return task_id
    if not offline and not was_offline:
        return task_id
    where = (
        "offline session is gone"
        if offline and was_offline
        else ("was recorded offline" if was_offline else "was recorded on a server")
    )
    log.warning(
        "ClearML: the stopped run's task %s %s; this run is recorded as a new task", task_id, where
    )
    return None


def _create_task(cfg: DictConfig, bind_hydra: bool, continue_task: str | None = None):
    """``Task.init`` and the config recorded: every call of a run's start that waits on the
    server (bounded as one by the caller). ``continue_task``: a task to report into again."""
    opts = cfg.logger.clearml
    destination = None if Task.is_offline() else model_destination(opts)
    task = Task.init(
        project_name=opts.project,
        task_name=opts.task_name,
        tags=list(opts.get("tags") or []),
        output_uri=destination,
        reuse_last_task_id=False,
        continue_last_task=continue_task or False,
        # checkpoints are registered deliberately, not every torch.save; figures are reported
        # as ClearML's own plots, not as matplotlib captures of the PNG files lightdet writes
        auto_connect_frameworks={
            "pytorch": False,
            "tensorboard": False,
            "matplotlib": False,
            "hydra": bind_hydra,
        },
        auto_resource_monitoring=quiet.resource_monitor(),  # no GPU probing where none is
    )
    if continue_task:  # Lightning's steps continue where they stopped: no offset
        task.set_initial_iteration(0)
        log.info("ClearML: continuing task %s, the stopped run's", continue_task)
    if running_remotely():
        if bind_hydra:
            check_applied(task, cfg)  # the binding ignores its own failures: stop, not defaults
        # an agent's task carries its own output destination, which the dashboard edits past
        # the write policy (a local folder of the agent's machine, say): the checked config
        # value decides, as in a local run
        task.output_uri = destination or False
    task.connect(hydra_overrides(cfg), name=HYDRA_SECTION)
    scrub_task(task)
    if not opts.get("upload_images", True):
        _withhold_images(task)
    if not bind_hydra:
        task.set_configuration_object("OmegaConf", config_text=OmegaConf.to_yaml(cfg))
    return task


def _withhold_images(task) -> None:
    """``upload_images: false``: the task's logger sends no image, whoever asks (debug images,
    training samples, the plots of studies and searches); scalars, tables and plots still go."""
    reporter = task.get_logger()

    def withheld(title: str, series: str, *args: Any, **kwargs: Any) -> None:
        log.debug(
            "ClearML: image %s/%s not sent (logger.clearml.upload_images=false)", title, series
        )

    reporter.report_image = withheld
    log.info("ClearML: logger.clearml.upload_images=false: no images are sent to the server")


def scrub_task(task) -> None:
    """Credential values out of the parameters ClearML recorded by itself, such as its argparse
    binding's ``Args/overrides`` (Hydra reads the command line with argparse)."""
    secrets = secret_values()
    if not secrets:
        return
    for name, value in task.get_parameters(backwards_compatibility=False).items():
        if isinstance(value, str) and (clean := scrub_text(value, secrets)) != value:
            task.set_parameter(name, clean)


def record_classes(
    task, class_names: list[str], category_map: Mapping, made_splits: Mapping | None = None
) -> None:
    """Keep the class list and the dataset's id map with the task and its models, and the
    seeded splits made for data folders without split lists (``{folder: {split: names}}``)."""
    bounded.send(
        task,
        "recording the class list",
        _record_classes,
        task,
        class_names,
        category_map,
        made_splits,
    )


def _record_classes(task, class_names, category_map: Mapping, made_splits) -> None:
    task.set_model_label_enumeration(label_enumeration(class_names))
    dataset = {
        "class_names": list(class_names),
        "category_map": {str(k): v for k, v in category_map.items()},
    }
    if made_splits:
        dataset["made_splits"] = {str(k): dict(v) for k, v in made_splits.items()}
    text = OmegaConf.to_yaml(dataset)
    task.set_configuration_object(
        name="Dataset", config_text=text, description="classes and label map"
    )


def register_model(
    task,
    path: str,
    *,
    model: OutputModel | None = None,
    name: str,
    class_names: list[str],
    config: Mapping,
    metrics: Mapping[str, float],
    iteration: int,
    evaluation: Mapping | None = None,
) -> OutputModel | None:
    """Register (or update) an output model with the class names as its label enumeration;
    None when the task's server stopped answering (the upload is bounded in time).

    ``evaluation`` (:func:`lightdet.evaluation.report.model_card`, plus the input size): what
    the model registry shows of the model's evaluation: the model's own table ("evaluation") and
    single values (``map``, ``map_50``, ``voc_map``, ``score_threshold``, ...), recorded in an
    offline session too (ClearML replays a model's events on import); online, also the model's
    metadata (typed key/values, searchable in the registry). The SDK cannot set metadata
    offline (its offline API has no such request); the first registration's configuration
    holds the evaluation there as well.

    ClearML 2.1.12 offline: ``OutputModel.update_weights`` raises AttributeError ('DummyModel'
    has no 'locked') because its "published" check runs before its offline branch. Offline, we
    call that offline branch directly: it copies the file into the session's ``models/`` folder
    and records the model in ``task.json`` for ``Task.import_offline_session``. Online runs use
    the public ``update_weights`` unchanged.
    """
    return bounded.send(
        task,
        f"uploading the model {name!r}",
        _register_model,
        task,
        path,
        model=model,
        name=name,
        class_names=class_names,
        config=config,
        metrics=metrics,
        iteration=iteration,
        evaluation=evaluation,
        kind=bounded.UPLOAD,
    )


def _register_model(
    task, path, *, model, name, class_names, config, metrics, iteration, evaluation=None
):
    if model is None:
        design = {"config": dict(config), "metrics": dict(metrics)}
        model = OutputModel(
            task=task,
            name=name,
            label_enumeration=label_enumeration(class_names),
            config_dict={**design, **({"evaluation": dict(evaluation)} if evaluation else {})},
            framework="PyTorch",
            tags=["lightdet"],
        )
    model.comment = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
    if Task.is_offline():
        _link_offline_weights(model, task, path, iteration)
    else:
        model.update_weights(weights_filename=path, iteration=iteration, auto_delete_file=False)
    if evaluation:
        _record_evaluation(model, evaluation, iteration)
    return model


# the model's single values: the numbers a registry sorts models by
CARD_VALUES = ("map", "map_50", "map_75", "voc_map", "score_threshold", "f1")


def _record_evaluation(model: OutputModel, evaluation: Mapping, iteration: int) -> None:
    rows = [["key", "value"]] + [[k, _card_text(v)] for k, v in evaluation.items()]
    model.report_table("evaluation", "model card", iteration=iteration, table_plot=rows)
    for key in CARD_VALUES:
        if isinstance(evaluation.get(key), (int, float)):
            model.report_single_value(key, float(evaluation[key]))
    if not Task.is_offline():
        model.set_all_metadata(
            {k: {"value": _card_text(v), "type": _card_type(v)} for k, v in evaluation.items()},
            replace=True,
        )
    # the model's events have a queue of their own, which Task.close does not wait for: the
    # offline session's zip (what make clearml-import uploads) was written without them
    reporter = getattr(model, "_reporter", None)  # SDK-private; no public flush for a model
    if reporter is not None:
        reporter.flush()
        reporter.wait_for_events(timeout=60)


def _card_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _card_type(value) -> str:
    return {bool: "bool", int: "int", float: "float"}.get(type(value), "str")


def _link_offline_weights(model: OutputModel, task, path: str, iteration: int) -> None:
    """The offline branch of ``update_weights``, with the session's copy of the file made a
    hard link to it: the SDK copies each registered checkpoint into the session (a 3-minute run
    kept its 47 MB model twice, besides the copy in the session's zip). The session's name is
    unlinked first, so the SDK's copy never writes through a link into a run's file; where
    linking fails (another file system), its copy stays."""
    stored = Path(task.get_offline_mode_folder()) / model._offline_folder / Path(path).name
    stored.unlink(missing_ok=True)
    model._update_weights_offline(weights_filename=path, iteration=iteration)
    spare = stored.with_name(f".{stored.name}.link")
    try:
        spare.unlink(missing_ok=True)
        os.link(path, spare)
        os.replace(spare, stored)
    except OSError:
        spare.unlink(missing_ok=True)


class ClearMLLogger(Logger):
    """Lightning logger: ``stage/name`` metrics become ClearML title ``stage``, series ``name``.

    Args:
        task: the run's task; None (e.g. on non-zero DDP ranks) makes every call a no-op.
    """

    def __init__(self, task=None) -> None:
        super().__init__()
        self._task = task
        self.last_step = 0  # callbacks report plots and images at the step of the last scalars

    @property
    def name(self) -> str:
        return "clearml"

    @property
    def version(self) -> str:
        return self._task.id if self._task is not None else "none"

    @property
    def experiment(self):
        return self._task

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._task is None or bounded.lost(self._task):
            return
        reporter = self._task.get_logger()
        self.last_step = int(step or 0)
        for key, value in metrics.items():
            title, series = key.split("/", 1) if "/" in key else (key, key)
            reporter.report_scalar(title, series, value=float(value), iteration=self.last_step)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The config is recorded by :func:`init_task`, as editable overrides."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        bounded.send(
            self._task,
            "flushing reports and uploads",
            self._task.flush,
            wait_for_uploads=True,
            kind=bounded.UPLOAD,
        )


def note_export(task_id: str | None, fmt: str, coco: Mapping, file_name: str) -> str | None:
    """Record an export's mAP change on the best model its training run registered: metadata
    ``export_<fmt>_map_change`` (and ``..._map_50_change``, ``..._file``) and the model's
    single values of the same names. Returns a line saying which model, or None where there is
    none to reach: no task (a checkpoint from elsewhere), an offline session's task, no
    configured or answering server, no registered best model.

    Args:
        coco: the export report's ``{"map": {"pytorch", "exported"}, "map_50": {...}}``.
    """
    if not task_id or str(task_id).startswith("offline-") or not server_configured():
        return None
    if not server_reachable(api_host(), login=True):
        return None
    task = Task.get_task(task_id=str(task_id))
    best = [m for m in task.models["output"] if str(m.name).endswith(" best")]
    if not best:
        return None
    model = best[-1]
    changes = {
        f"export_{fmt}_{key}_change": float(v["exported"]) - float(v["pytorch"])
        for key, v in coco.items()
        if key in ("map", "map_50") and v.get("exported") is not None
    }
    model.set_all_metadata(
        {
            **{k: {"value": f"{v:.6g}", "type": "float"} for k, v in changes.items()},
            f"export_{fmt}_file": {"value": file_name, "type": "str"},
        },
        replace=False,
    )
    for key, value in changes.items():
        model.report_single_value(key, value)
    return f"mAP change recorded on ClearML model {model.name!r} ({model.id})"
