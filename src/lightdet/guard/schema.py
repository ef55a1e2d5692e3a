"""The config's schema: every key has a type, and where it matters a range or a choice list,
checked on the composed config before anything is created (no run folder, no ClearML task, no
data indexed). A violation is one line naming the key, the value and what is allowed.

Where a key's type comes from, declared once:

- a key of a node with a ``_target_`` is an argument of that callable: its type is the
  callable's own annotation (``build_retinanet(*, focal_gamma: float = 2.0)``,
  ``pytorch_lightning.Trainer(max_epochs: Optional[int])``), and a key the callable does not
  take is refused (Hydra would fail on it only when building, after the run began);
  :data:`LIMITS` adds ranges the annotation cannot say (``data.batch_size`` >= 1);
- every other key is declared in :data:`KEYS` (``*`` stands for one name of the user's,
  ``study.cells.<cell>``); a key declared nowhere is refused: a typo added with ``+``
  (``+budget_minute=3``) is not silently ignored.

Values are checked after interpolation, as the run will read them; a value that cannot be
resolved outside a run (``${hydra:...}``) is left to the run.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from lightdet.guard.types import Items, Node, Pattern, Range, Size, describe, fits, with_range

Seed = Annotated[int, Range(ge=0, le=2**32 - 1)]  # what numpy and Lightning seed with
Positive = Annotated[int, Range(ge=1)]
Count = Annotated[int, Range(ge=0)]
Fraction = Annotated[float, Range(ge=0, le=1)]
Minutes = Annotated[float, Range(gt=0)]
Metric = Annotated[
    str, Pattern(re.compile(r"^(train|val|test)/\w+$").match, "as stage/name (val/map)")
]
Text = str
Precision = (
    Literal["auto", "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed"]
    | Literal["transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16"]
    | Literal[64, 32, 16]
    | None
)
Devices = (
    Annotated[int, Range(ge=-1)]
    | list[Count]
    | Annotated[str, Pattern(re.compile(r"^(auto|-1|\d+(,\d+)*,?)$").match, "(auto, -1, 0,1)")]
)
Overrides = list[str]

# keys that are not arguments of a _target_: their type, range or choices
KEYS: dict[str, Any] = {
    # every command
    "task_name": Text,
    "seed": Seed,
    "ckpt_path": Text | None,
    "paths.root_dir": Text,
    "paths.data_dir": Text,
    "paths.log_dir": Text,
    "paths.output_dir": Text,
    "output_dir": Text,
    # train
    "nonfinite_loss.action": Literal["skip", "stop"],
    "nonfinite_loss.max_steps": Positive,
    "keep_freed_memory": bool,
    "budget_minutes": Minutes | None,
    "optimization.nominal_batch_size": Positive | None,
    "optimization.lr_reference_batch_size": Positive | None,
    "optimization.lr_scaling": Literal["linear", "sqrt"],
    "optimization.backbone_lr_mult": Annotated[float, Range(ge=0)],
    "test": bool,
    "optimized_metric": Metric,
    "model.name": Text,
    "model.precision": Text | int | None,
    "model.backbone": Text,  # for reports, where the builder takes no backbone argument
    "callbacks.*": Node | None,  # null: that callback left out
    "callbacks.*.enabled": bool,
    "trainer.devices": Devices,  # Lightning's annotation says text: these are the texts it takes
    "trainer.precision": Precision,  # Lightning's values and auto (lightning.precision)
    "logger.clearml.project": Text,
    "logger.clearml.task_name": Text,
    "logger.clearml.tags": list[Text],
    "logger.clearml.offline": bool | None,
    "logger.clearml.output_uri": Text | None,
    "logger.clearml.upload_models": bool,
    "logger.clearml.upload_images": bool,
    "logger.clearml.connect_tries": Positive,
    "logger.clearml.connect_timeout": Annotated[float, Range(gt=0)],
    "logger.clearml.call_timeout": Annotated[float, Range(gt=0)],
    "logger.clearml.upload_timeout": Annotated[float, Range(gt=0)],
    "logger.clearml.remote_queue": Text | None,
    # evaluate
    "split": Literal["val", "test"],
    "data_from": Literal["checkpoint", "config"],
    # predict
    "input": Text,
    "score_thresh": Fraction | None,
    "classes": list[Text | int] | None,
    "max_detections": Positive | None,
    "batch_size": Positive,
    "device": Text | None,
    "draw": bool,
    # export
    "format": Literal["onnx", "torchscript"],
    "verify.max_images": Positive | None,
    "verify.blank_image": bool,
    "precision": Literal["fp32", "int8"],
    "quantize.calibration_split": Literal["train", "val", "test"],
    "quantize.calibration_images": Positive,
    "quantize.max_map_drop": Fraction,
    # show-augment
    "num_images": Positive,
    "repeats": Count,
    "cell_size": Annotated[int, Range(ge=32)],
    "output": Text,
    # hpo
    "backend": Literal["auto", "local", "clearml"],
    "hpo.study_name": Text,
    "hpo.objective": Metric,
    "hpo.n_trials": Positive,
    "hpo.sampler_seed": int | None,
    "hpo.storage": Text | None,
    "hpo.train_overrides": Overrides,
    "hpo.search_space": dict[str, dict[str, Any]],
    "hpo.pruner.n_startup_trials": Count,
    "hpo.pruner.n_warmup_steps": Count,
    "hpo.clearml.base_task_id": Text | None,
    "hpo.clearml.execution_queue": Text,
    "hpo.clearml.max_concurrent": Positive,
    "hpo.clearml.time_limit_per_trial_min": Minutes | None,
    "hpo.clearml.total_time_limit_min": Minutes | None,
    "hpo.clearml.top_k": Positive,
    "hpo.clearml.poll_period_min": Minutes,
    "hpo.clearml.spawn_project": Text | None,
    # study
    "cell": Text | None,
    "study.name": Text,
    "study.dir": Text,
    "study.base": Overrides,
    "study.cells": dict[str, Overrides],
    "study.budget.epochs": Positive | None,
    "study.budget.minutes": Minutes | None,
    "study.metrics": list[Metric],
    "study.test": bool,
    "study.seeds": Positive,
    "study.trained_floor.epochs": Count | None,
    "study.trained_floor.metric": float | None,
    "study.checkpoints": list[Text],
    "study.latency.batch_sizes": list[Positive],
    "study.latency.warmup": Count,
    "study.latency.repeats": Positive,
    "study.latency.blocks": Positive,
    "study.latency.threads": Positive | None,
    "study.latency.device": Text | None,
    "study.latency.images": Positive,
    "study.latency.runtimes": list[Literal["pytorch", "onnx-fp32", "onnx-int8"]],
    "study.latency.calibration_images": Positive,
    "study.paper": dict[str, dict[str, float]],
    "study.paper_note": Text | None,
    "study.verdicts": list[tuple[Text, Text]],
    "study.heatmap": dict[str, Text] | None,
}

# ranges for arguments of _target_ nodes (their types come from the callables' signatures);
# a tuple: several (a list's size and its items' range)
_SIZES = (Size(ge=1), Items(Range(gt=0)))
LIMITS: dict[str, Range | tuple[Range | Size | Items, ...]] = {
    "data.batch_size": Range(ge=1),
    "data.source.seed": Range(ge=0, le=2**32 - 1),
    "data.source.split_seed": Range(ge=0, le=2**32 - 1),
    "model.net.anchor_sizes": _SIZES,
    "model.net.aspect_ratios": _SIZES,
    "model.net.feature_strides": _SIZES,
    "model.net.extra_channels": _SIZES,
    "callbacks.model_checkpoint.save_top_k": Range(ge=-1),
    "callbacks.early_stopping.patience": Range(ge=0),
    "callbacks.early_stopping.min_delta": Range(ge=0),
    "callbacks.ema.decay": Range(gt=0, lt=1),
    "callbacks.ema.tau": Range(ge=0),
    "callbacks.cpu_share.window_s": Range(gt=0),
    "callbacks.run_results.num_images": Range(ge=0),
    "callbacks.clearml_reports.num_images": Range(ge=0),
    "callbacks.clearml_reports.score_threshold": Range(ge=0, le=1),
    "callbacks.throughput.window_size": Range(ge=2),
    "data.num_workers": Range(ge=0),
    "data.source.num_train": Range(ge=1),
    "data.source.num_val": Range(ge=0),
    "data.source.num_test": Range(ge=0),
    "data.source.image_size": Range(ge=32),
    "data.source.val_fraction": Range(gt=0, lt=1),
    "data.policy.max_skip_fraction": Range(ge=0, le=1),
    "data.policy.min_visibility": Range(ge=0, le=1),
    "data.policy.max_image_pixels": Range(ge=1),
    "model.net.min_size": Range(ge=32),
    "model.net.max_size": Range(ge=32),
    "model.net.size": Range(ge=32),
    "model.net.focal_alpha": Range(ge=-1, le=1),
    "model.net.focal_gamma": Range(ge=0),
    "model.net.prior_probability": Range(gt=0, lt=1),
    "model.net.detections_per_img": Range(ge=1),
    "model.net.fpn_channels": Range(ge=1),
    "model.net.scales_per_octave": Range(ge=1),
    "model.optimizer.lr": Range(gt=0),
    "model.optimizer.weight_decay": Range(ge=0),
    "model.optimizer.momentum": Range(ge=0, lt=1),
    "model.scheduler.warmup_steps": Range(ge=0),
    "model.scheduler.warmup_fraction": Range(gt=0, le=1),
    "model.scheduler.warmup_factor": Range(gt=0, le=1),
    "model.scheduler.min_lr_ratio": Range(ge=0, le=1),
    "trainer.max_epochs": Range(ge=-1),
    "trainer.max_steps": Range(ge=-1),
    "trainer.log_every_n_steps": Range(ge=1),
    "trainer.accumulate_grad_batches": Range(ge=1),
    "trainer.gradient_clip_val": Range(ge=0),
    "trainer.num_sanity_val_steps": Range(ge=-1),
    "trainer.check_val_every_n_epoch": Range(ge=1),
}


# callables whose **kwargs are the arguments of another (typed there): checked as those
KWARGS_OF = {
    "lightdet.data.sources.ShapesSource": "lightdet.data.shapes.ShapesSpec",
    "pytorch_lightning.callbacks.ThroughputMonitor": (
        "lightning_fabric.utilities.throughput.Throughput"
    ),
}


class ConfigValueError(ValueError, CompactHydraException):
    """Config values the schema refuses; one line per key, printed without a traceback. Its
    message is scrubbed: it repeats keys and values, and a credential can be either."""

    def __init__(self, message: str = "") -> None:
        from lightdet.guard.secrets import scrub_line

        super().__init__(scrub_line(str(message)))


def check_schema(cfg: DictConfig, where: str = "config") -> None:
    """Refuse every key of ``cfg`` (``hydra`` aside) whose value does not fit its declared
    type and range, or that nothing declares; all violations in one message, a line each."""
    problems = list(violations(cfg))
    if problems:
        raise ConfigValueError("\n".join(f"{where}: {p}" for p in problems))


def violations(cfg: DictConfig) -> Iterator[str]:
    """One line per key that breaks the schema: ``key=value: expected ...``."""
    for key, value, annotation, problem in entries(cfg):
        if problem is None and not (value is _UNRESOLVED or fits(value, annotation)):
            problem = f"{key}={_shown(value)}: expected {describe(annotation)}"
        if problem is not None:
            yield problem


Entry = tuple[str, Any, Any, "str | None"]  # key, value, annotation, what is wrong with it


def entries(cfg: DictConfig) -> Iterator[Entry]:
    """Every key the schema types, with its value and annotation (or the problem found
    before its type: missing, undeclared, not an argument)."""
    for key in cfg.keys():
        if key != "hydra":
            yield from _plain(cfg, str(key))


def _plain(parent: DictConfig, key: str, path: str = "") -> Iterator[Entry]:
    """A key outside any ``_target_`` node: declared in :data:`KEYS`, or a node holding such."""
    full = f"{path}.{key}" if path else key
    value, problem = _value(parent, key, full)
    declared = _declared(full)
    if problem or declared is not None:
        yield full, value, declared, problem
    elif isinstance(value, DictConfig) and "_target_" not in value:
        for child in value.keys():
            yield from _plain(value, str(child), full)
    elif not isinstance(value, DictConfig) and value is not _UNRESOLVED:
        yield full, value, None, f"{full}: not a key lightdet reads{_close(full, KEYS)}"
    if not problem and isinstance(value, DictConfig) and "_target_" in value:
        yield from _node(value, full)


def _node(node: DictConfig, path: str) -> Iterator[Entry]:
    """A ``_target_`` node: each key an argument of the callable, of its annotated type."""
    target = node.get("_target_")
    if not isinstance(target, str):
        return  # the registry check has refused it already
    params, open_kwargs = _parameters(target)
    for key in map(str, node.keys()):
        if key.startswith("_") and key.endswith("_"):
            continue  # _target_, _partial_, _recursive_, _convert_
        full = f"{path}.{key}"
        value, problem = _value(node, key, full)
        annotation = _declared(full)
        if annotation is None and key in params:
            annotation = params[key]
            if full in LIMITS:
                limit = LIMITS[full]
                limits = limit if isinstance(limit, tuple) else (limit,)
                annotation = with_range(annotation, *limits)
        elif annotation is None and not problem:
            if open_kwargs:  # taken as **kwargs and typed nowhere: anything passes here
                yield full, value, Any, None
                continue
            close = _close(key, params, prefix=path + ".")
            problem = f"{full}: not an argument of {target.rsplit('.', 1)[-1]}{close}"
        yield full, value, annotation, problem
        if not problem and isinstance(value, ListConfig | DictConfig):
            yield from _nested_nodes(value, full)


def _nested_nodes(value: Any, path: str) -> Iterator[Entry]:
    """``_target_`` nodes in an argument: the argument itself, or inside a list or mapping."""
    if isinstance(value, DictConfig) and "_target_" in value:
        yield from _node(value, path)
        return
    items = value.items() if isinstance(value, DictConfig) else enumerate(value)
    for key, child in items:
        if isinstance(child, DictConfig) and "_target_" in child:
            yield from _node(child, f"{path}.{key}")


_UNRESOLVED = object()  # a value that only a run can resolve (``${hydra:...}``)


def _value(parent: DictConfig, key: str, full: str) -> tuple[Any, str | None]:
    try:
        return parent[key], None
    except MissingMandatoryValue:
        return None, f"{full}: required; give {full}=<value>"
    except OmegaConfBaseException:
        return _UNRESOLVED, None


def _shown(value: Any) -> str:
    if isinstance(value, DictConfig | ListConfig):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=False)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.cache
def _patterns() -> list[tuple[list[str], Any]]:
    return [(k.split("."), v) for k, v in KEYS.items() if "*" in k]


def _declared(full: str) -> Any:
    if full in KEYS:
        return KEYS[full]
    parts = full.split(".")
    for pattern, annotation in _patterns():
        if len(pattern) == len(parts) and all(p in ("*", q) for p, q in zip(pattern, parts)):
            return annotation
    return None


@functools.cache
def _parameters(target: str) -> tuple[dict[str, Any], bool]:
    """``({argument: annotation}, takes **kwargs)`` of a registered callable."""
    from lightdet.guard.targets import _locate

    try:
        obj = _locate(target)
        signature = inspect.signature(obj)
    except (ImportError, ValueError, TypeError, AttributeError):
        return {}, True  # nothing known: nothing refused here
    function = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # an annotation that names what cannot be imported: types unknown
        hints = {}
    params, open_kwargs = {}, False
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            open_kwargs = True
        elif param.kind is not param.VAR_POSITIONAL:
            params[name] = hints.get(name, Any)
    if open_kwargs and target in KWARGS_OF:
        more, open_kwargs = _parameters(KWARGS_OF[target])
        params = {**params, **more}
    return params, open_kwargs


def _close(key: str, known: Mapping | dict, prefix: str = "") -> str:
    names = [k for k in known if "*" not in k]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    return f"; did you mean {prefix}{close[0]}?" if close else ""
