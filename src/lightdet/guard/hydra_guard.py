"""Checks that run inside Hydra's composition, before Hydra acts on the config.

Hydra itself instantiates ``hydra.callbacks``, sets ``hydra.job.env_set`` in the environment,
picks the launcher and sweeper, and configures logging from ``hydra.*`` nodes, all before the
task function runs; a check in ``train()`` would come too late. So lightdet wraps
``Hydra.compose_config``, the one method every path goes through: ``@hydra.main`` runs,
``hydra.compose`` (search trials, tests, the Python API), and a task re-run by a
``clearml-agent``, whose edited ``Hydra/*`` parameters ClearML's binding appends to the
overrides just before composing. The wrapper

1. refuses an override of any ``hydra.*`` key or ``hydra/`` group except a few harmless ones
   (run folder names, which Lightning's DDP launcher passes to its child processes, verbosity,
   the logging presets Hydra ships), and any override value with an interpolation outside
   :mod:`lightdet.guard.interpolations`' list;
2. after composing, checks every ``_target_`` of the config, that Hydra's own instantiating
   nodes are what the project's files say (empty callbacks, env_set, searchpath; the basic
   launcher and sweeper), every value against the schema (:mod:`lightdet.guard.schema`), and
   that a run folder is new, empty or lightdet's;
3. scrubs credential values from the composed config, Hydra's record of the overrides included.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightdet import outputs
from lightdet.guard.interpolations import check_interpolations, check_value, strings
from lightdet.guard.schema import check_schema
from lightdet.guard.secrets import scrub_config
from lightdet.guard.targets import (
    HYDRA_CALLBACK,
    HYDRA_LAUNCHER,
    HYDRA_SWEEPER,
    UnsafeConfigError,
    check_target,
    check_targets,
)
from lightdet.guard.writes import check_writes, hydra_keys

# presets shipped with Hydra, and the launchers a study may run its jobs with
HYDRA_GROUPS = ("hydra/job_logging", "hydra/hydra_logging", "hydra/launcher")
_EMPTY_NODES = ("hydra.job.env_set", "hydra.searchpath")
# launcher settings an override may change: how many jobs and where, never commands to run
# (Submitit's setup, srun_args and additional_parameters reach a shell)
LAUNCHER_KEYS = (
    "n_jobs",
    "timeout_min",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "mem_gb",
    "nodes",
    "partition",
    "qos",
    "account",
    "constraint",
    "array_parallelism",
)
_LAUNCHER_SHELL = ("setup", "srun_args", "additional_parameters")
Preflight = Callable[[DictConfig, Sequence[str]], None]
_preflight: Preflight | None = None  # the running command's checks (cli.hydra_entry sets them)


def _is_hydra(name: str | None) -> bool:
    return bool(name) and (name == "hydra" or name.startswith(("hydra.", "hydra/")))


def check_overrides(overrides: Iterable[str], where: str = "override") -> None:
    """Refuse an override of Hydra's own nodes, or one whose value calls a resolver not on the
    list; the error names the key and repeats the override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key, line = override.key_or_group, override.input_line
        if _is_hydra(override.package):
            raise UnsafeConfigError(
                f"{where} {line!r}: {key}@{override.package}: a config may not be placed in "
                "Hydra's own nodes"
            )
        launcher_key = key.startswith("hydra.launcher.") and key.split(".", 2)[2] in LAUNCHER_KEYS
        if _is_hydra(key) and key not in hydra_keys() + HYDRA_GROUPS and not launcher_key:
            raise UnsafeConfigError(
                f"{where} {line!r}: {key}: Hydra's own settings cannot be overridden (they can "
                f"instantiate code or set the environment); allowed: {', '.join(hydra_keys())}, "
                f"{', '.join(HYDRA_GROUPS)}"
            )
        value = None if override.is_delete() else override.value()
        if hasattr(value, "list"):  # choice(...) and the other sweeps
            value = list(value.list)
        for _, text in strings(value):
            check_value(text, key, f"{where} {line!r}")


def check_hydra_node(cfg: DictConfig) -> None:
    """Hydra's instantiating nodes must hold the project's (empty or basic) values."""
    if "hydra" not in cfg:
        return
    for key in _EMPTY_NODES:
        value = OmegaConf.select(cfg, key)
        if value:
            raise UnsafeConfigError(f"config: {key} must be empty, got {value}")
    for key, place in (
        ("hydra.sweeper._target_", HYDRA_SWEEPER),
        ("hydra.launcher._target_", HYDRA_LAUNCHER),
    ):
        value = OmegaConf.select(cfg, key)
        if value is not None:
            check_target(value, key, "config", place)
    for key in _LAUNCHER_SHELL:
        value = OmegaConf.select(cfg, f"hydra.launcher.{key}")
        if value:
            raise UnsafeConfigError(f"config: hydra.launcher.{key} must be empty, got {value}")
    for name, callback in (OmegaConf.select(cfg, "hydra.callbacks") or {}).items():
        node = OmegaConf.to_container(callback) if callback is not None else None
        if node is None:
            continue
        key = f"hydra.callbacks.{name}"
        if set(node) != {"_target_"}:
            raise UnsafeConfigError(f"config: {key}={node}: a Hydra callback takes no arguments")
        check_target(node["_target_"], f"{key}._target_", "config", HYDRA_CALLBACK)


def check_composed(
    cfg: DictConfig,
    *,
    run: bool,
    quiet: bool = False,
    chosen_dir: bool = True,
    overrides: Sequence[str] = (),
    multirun: bool = False,
) -> None:
    """Steps 2 and 3 above, on a freshly composed config (``run``: Hydra is about to create
    the run folder ``hydra.run.dir``; ``quiet``: a probe whose config is thrown away;
    ``chosen_dir``: the run folder was given as an override, as Lightning's DDP launcher gives
    its children the parent's; otherwise the folder the pattern names is made unique here, so
    two runs started in the same second never share one). A run's inputs are checked too, by
    the preflight its entry point declared (:func:`use_preflight`, given the command line's
    ``overrides``), before any folder exists."""
    check_hydra_node(cfg)
    body = {k: cfg._get_node(k) for k in cfg.keys() if k != "hydra"}
    check_interpolations(body)
    check_targets(body)
    check_writes(cfg, multirun=multirun)  # every place the config names for writing
    if not quiet:
        check_schema(cfg)  # every value of its type and range, before anything is built
    run_dir = OmegaConf.select(cfg, "hydra.run.dir") if run else None
    checkpoint = OmegaConf.select(cfg, "ckpt_path", default=None) if run else None
    if checkpoint and checkpoint != "auto":  # missing, empty, truncated: before any folder
        from hydra.errors import CompactHydraException

        from lightdet.guard.checkpoints import (
            BadCheckpointFileError,
            UnsafeCheckpointError,
            inspect_checkpoint,
        )

        class CheckpointArgumentError(BadCheckpointFileError, CompactHydraException):
            """Printed by Hydra as its message alone: one line, no traceback."""

        try:
            inspect_checkpoint(checkpoint)  # its facts, kept for the run
        except (BadCheckpointFileError, UnsafeCheckpointError) as err:
            raise CheckpointArgumentError(f"ckpt_path: {err}") from None
    if run and _preflight is not None:
        _preflight(cfg, overrides)
    if run_dir:
        try:
            outputs.check_free(run_dir, "hydra.run.dir")
        except outputs.ForeignFolderError as err:  # before Hydra writes .hydra/ and its log
            raise UnsafeConfigError(str(err)) from err
        if not chosen_dir:
            cfg.hydra.run.dir = str(outputs.new_run_dir(run_dir))
    if multirun and not quiet:  # checked by check_writes; Hydra's launcher writes into it next
        outputs.mark(OmegaConf.select(cfg, "hydra.sweep.dir"), "sweep")
    scrub_config(cfg, quiet=quiet)


def use_preflight(check: Preflight | None) -> None:
    """The checks of the command about to run (``check(cfg, overrides)``, raising on a fault),
    declared by its entry point: run on the config of every run it composes from now on."""
    global _preflight
    _preflight = check


def install() -> None:
    """Wrap ``Hydra.compose_config`` (idempotent)."""
    from hydra._internal.hydra import Hydra
    from hydra.errors import ConfigCompositionException
    from hydra.types import RunMode

    original = Hydra.compose_config
    if getattr(original, "_lightdet_guard", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def compose_config(*args: Any, **kwargs: Any) -> DictConfig:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check_overrides(bound.arguments["overrides"] or [])
        try:
            cfg = original(*bound.args, **bound.kwargs)
        except ConfigCompositionException as err:  # a mistyped key: the closest keys
            from lightdet.guard.suggest import did_you_mean

            def without(overrides: list[str]) -> DictConfig:
                again = signature.bind(*args, **kwargs)
                again.apply_defaults()
                again.arguments["overrides"] = overrides
                return original(*again.args, **again.kwargs)

            hint = did_you_mean(str(err), bound.arguments["overrides"] or [], without)
            if hint is None:
                raise
            raise ConfigCompositionException(f"{err}\n{hint}") from err
        logs = bool(bound.arguments.get("with_log_configuration"))
        run = bound.arguments["run_mode"] == RunMode.RUN and logs
        # Hydra.get_mode composes once without logging, as a probe, before the real run
        probe = not logs and not bound.arguments.get("validate_sweep_overrides", True)
        chosen = any(
            o.split("=", 1)[0].lstrip("+~") == "hydra.run.dir"
            for o in bound.arguments["overrides"] or []
        )
        multirun = bound.arguments["run_mode"] == RunMode.MULTIRUN and logs
        check_composed(
            cfg,
            run=run,
            quiet=probe,
            chosen_dir=chosen,
            multirun=multirun,
            overrides=bound.arguments["overrides"] or [],
        )
        return cfg

    compose_config._lightdet_guard = True  # type: ignore[attr-defined]
    Hydra.compose_config = compose_config
