"""Which callables a config may name: an exact registry of fully qualified names.

A config reaches code in four places: a ``_target_`` in the config body, the ``path`` of a
``hydra.utils.get_method`` node (a function passed by name), Hydra's own ``hydra.callbacks``,
and Hydra's launcher and sweeper. Each place accepts only the names :data:`REGISTRY` lists for
it, compared as strings before anything is imported: no package is allowed wholesale, so a
function added to a lightdet module (or one a module imports: ``lightdet.x.torch.load`` *is*
``torch.load``) is never reachable by accident. Every entry was reviewed for what it can do
with its arguments; nothing on the list writes except through a key the write policy declares
(:mod:`lightdet.guard.writes`), reads files other than declared inputs, imports or evaluates.

Adding a name is a code-level decision: :func:`allow_targets` in an entry script of your own,
never a config or an environment variable.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Mapping
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException


class UnsafeConfigError(ValueError, CompactHydraException):
    """A config names a callable the project does not expect, or builds one at resolution.

    A ``CompactHydraException`` too, so a refusal during Hydra's composition prints as one
    line naming the key, not as a traceback through Hydra's internals. Its message is scrubbed
    (credential values, URL user-info): it repeats the refused value, and is printed before
    any log filter exists.
    """

    def __init__(self, message: str = "") -> None:
        from lightdet.guard.secrets import scrub_line

        super().__init__(scrub_line(str(message)))


COMPONENT = "a config _target_"
METHOD = "a hydra.utils.get_method path"
HYDRA_CALLBACK = "hydra.callbacks"
HYDRA_LAUNCHER = "hydra.launcher"
HYDRA_SWEEPER = "hydra.sweeper"

_OPTIMIZER = "a torch optimizer: parameters and numbers, no I/O"
_CALLBACK = "a Lightning callback: reads trainer state, no I/O of its own"
_TORCH_OPTIMIZERS = (
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
    "ASGD",
    "Rprop",
    "LBFGS",
)
_LIGHTNING_CALLBACKS = (
    "LearningRateMonitor",
    "ModelSummary",
    "RichModelSummary",
    "TQDMProgressBar",
    "RichProgressBar",
    "StochasticWeightAveraging",
    "GradientAccumulationScheduler",
    "Timer",
    "DeviceStatsMonitor",
    "EMAWeightAveraging",
)

# name -> (the place it may be named in, what it does with its arguments)
REGISTRY: dict[str, tuple[str, str]] = {
    # models: build a stock torchvision detector; read only model.net.pretrained (declared read)
    **{
        f"lightdet.models.{module}.build_{name}": (COMPONENT, "builds a detector")
        for module, name in (
            ("retinanet", "retinanet"),
            ("ssd", "ssd"),
            ("ssd", "ssd300_vgg16"),
            ("ssd", "ssdlite"),
            ("fcos", "fcos"),
            ("faster_rcnn", "faster_rcnn"),
        )
    },
    # data: sources read the declared data roots; only ShapesSource writes, into its root,
    # which it claims (new, empty or its own generated folder)
    "lightdet.data.sources.VOCSource": (COMPONENT, "reads a VOC folder"),
    "lightdet.data.sources.COCOSource": (COMPONENT, "reads COCO JSON and images"),
    "lightdet.data.sources.YOLOSource": (COMPONENT, "reads a YOLO folder"),
    "lightdet.data.sources.ShapesSource": (COMPONENT, "generates the shapes data in its root"),
    "lightdet.data.checks.DataPolicy": (COMPONENT, "settings only"),
    "lightdet.data.transforms.train_preset": (COMPONENT, "an albumentations pipeline"),
    "lightdet.data.transforms.eval_preset": (COMPONENT, "an albumentations pipeline"),
    "lightdet.data.transforms.zoom_preset": (COMPONENT, "an albumentations pipeline"),
    "lightdet.lightning.datamodule.DetectionDataModule": (COMPONENT, "loaders over a source"),
    "lightdet.lightning.schedulers.warmup_cosine": (COMPONENT, "an lr schedule (partial)"),
    "lightdet.lightning.schedulers.warmup_multistep": (COMPONENT, "an lr schedule (partial)"),
    # callbacks: write only under their dirpath keys (declared writes)
    "lightdet.lightning.ema.EMA": (COMPONENT, "an average of the weights, in memory"),
    "lightdet.lightning.cpu_share.CpuShare": (COMPONENT, "torch's thread count"),
    "lightdet.lightning.resume.ResumeCheckpoint": (COMPONENT, "last.ckpt in the run's folder"),
    "lightdet.tracking.callbacks.ClearMLReports": (COMPONENT, "reports to the run's task"),
    "lightdet.tracking.clearml.ClearMLLogger": (COMPONENT, "Lightning's logger: the run's task"),
    "lightdet.tracking.callbacks.ClearMLModelRegistry": (COMPONENT, "registers checkpoints"),
    "lightdet.lightning.results.RunResults": (COMPONENT, "results/ under its dirpath"),
    "pytorch_lightning.Trainer": (COMPONENT, "the trainer; default_root_dir is a declared write"),
    "pytorch_lightning.callbacks.ModelCheckpoint": (COMPONENT, "dirpath/filename: declared"),
    "pytorch_lightning.callbacks.EarlyStopping": (COMPONENT, _CALLBACK),
    "pytorch_lightning.callbacks.ThroughputMonitor": (COMPONENT, _CALLBACK),
    **{f"pytorch_lightning.callbacks.{n}": (COMPONENT, _CALLBACK) for n in _LIGHTNING_CALLBACKS},
    **{f"torch.optim.{n}": (COMPONENT, _OPTIMIZER) for n in _TORCH_OPTIMIZERS},
    # a function by name; its `path` must be a METHOD entry
    "hydra.utils.get_method": (COMPONENT, "returns the function its path names"),
    "lightdet.data.dataset.batch_size": (METHOD, "counts a batch's images"),
    # Hydra's own nodes
    "lightdet.studies.report.StudyReport": (HYDRA_CALLBACK, "a study's table and plots"),
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper": (HYDRA_SWEEPER, "Hydra's"),
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher": (HYDRA_LAUNCHER, "Hydra's"),
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": (
        HYDRA_LAUNCHER,
        "local processes",
    ),
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": (
        HYDRA_LAUNCHER,
        "local processes; its shell keys are refused",
    ),
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": (
        HYDRA_LAUNCHER,
        "Slurm jobs; its shell keys are refused",
    ),
}
_METHOD_GETTER = "hydra.utils.get_method"
# registered names that moved, old -> new: a checkpoint's stored config written before the
# move still names the old one (its callbacks are checked, never built from it)
RENAMED = {"lightdet.tracking.results.RunResults": "lightdet.lightning.results.RunResults"}
_extra_names: set[str] = set()  # exact names added by allow_targets
_extra_modules: set[str] = set()  # whole modules (and their submodules) added by allow_targets
_MAX_DEPTH = 64


def allow_targets(*names: str) -> None:
    """Allow your own callables as config targets: exact names (``mypkg.models.build_mine``),
    or a module's public classes and functions (``mypkg.models``, submodules included).

    Call it in an entry script of your own, before the config is checked::

        from lightdet.guard import allow_targets
        allow_targets("mypkg.models")
        import lightdet.train
        lightdet.train.main()  # the CLI; or the Python API: lightdet.train([...])

    A config can never do this: it is code the machine's operator runs.
    """
    for name in names:
        if not name or name.startswith(".") or name.endswith(".") or ".." in name:
            raise ValueError(f"allow_targets: {name!r} is not a module or callable name")
        _extra_modules.add(name)
        _extra_names.add(name)


def registered(place: str = COMPONENT) -> list[str]:
    """The names that may be used in ``place``, the user's own (:func:`allow_targets`) too."""
    return sorted([n for n, (p, _) in REGISTRY.items() if p == place] + list(_extra_names))


def _in_module(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _locate(path: str) -> Any:
    from hydra._internal.utils import _locate as hydra_locate  # exactly what instantiate does

    return hydra_locate(path)


@functools.cache
def _registered_object(path: str) -> Any:
    return _locate(path)


def _user_allowed(path: str, obj: Any) -> bool:
    """A callable :func:`allow_targets` allowed: named exactly, or public and defined in an
    allowed module (located first, so an imported name's own module decides)."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False
    module, qualname = getattr(obj, "__module__", "") or "", getattr(obj, "__qualname__", "")
    if path in _extra_names and f"{module}.{qualname}" == path:
        return True
    if "<locals>" in qualname or any(part.startswith("_") for part in qualname.split(".")):
        return False
    return any(_in_module(module, package) for package in _extra_modules)


def check_target(path: Any, key: str, where: str, place: str = COMPONENT) -> None:
    """Raise naming ``key`` unless ``path`` is registered for ``place`` (or allowed in code)."""
    name = f"{where}: {key}={path!r}"
    if not isinstance(path, str):
        raise UnsafeConfigError(f"{name}: a target must be a dotted path")
    if "${" in path:
        raise UnsafeConfigError(f"{name}: an interpolated target is not allowed")
    entry = REGISTRY.get(path)
    if entry is not None and entry[0] == place:
        _located(path, name, registered=True)  # a launcher that is not installed: one line
        return
    if entry is None and place in (COMPONENT, METHOD) and _user_root(path):
        if _user_allowed(path, _located(path, name, registered=False)):
            return
    where_else = f" (it is registered for {entry[0]})" if entry is not None else ""
    raise UnsafeConfigError(
        f"{name} is not a registered target for {place}{where_else}{_hint(path, place)}"
    )


def _located(path: str, name: str, *, registered: bool) -> Any:
    try:
        return _registered_object(path) if registered else _locate(path)
    except (ImportError, ValueError, AttributeError) as err:
        raise UnsafeConfigError(f"{name}: cannot be located ({str(err).splitlines()[0]})") from err


def _user_root(path: str) -> bool:
    """Only a path under a module the operator allowed is imported to be checked."""
    return any(path == p or path.startswith(p + ".") for p in _extra_modules)


def _hint(path: str, place: str) -> str:
    close = difflib.get_close_matches(path, registered(place), n=1, cutoff=0.8)
    guess = f"; did you mean {close[0]}?" if close else ""
    return (
        f"{guess} (the registry: lightdet.guard.targets.REGISTRY; add your own in code with "
        "lightdet.guard.allow_targets)"
    )


def current_names(config: Any) -> Any:
    """A plain copy of a stored config with every moved target (:data:`RENAMED`) named as it
    is now; the input is not changed."""
    if isinstance(config, Mapping):
        return {
            k: RENAMED.get(v, v) if k == "_target_" and isinstance(v, str) else current_names(v)
            for k, v in config.items()
        }
    if isinstance(config, list | tuple):
        return [current_names(v) for v in config]
    return config


def check_targets(cfg: DictConfig | Mapping, where: str = "config") -> None:
    """Check every ``_target_`` at any depth, in mappings and lists, after resolution.

    A ``DictConfig`` is walked through item access, so interpolations are resolved the way
    ``instantiate`` will resolve them (a value that points at another node is walked there
    too). A value whose resolution fails here (``${hydra:...}`` outside a Hydra run) is
    checked as written; :mod:`lightdet.guard.interpolations` has already refused every
    resolver that could build a node or read the environment.
    """
    _walk(cfg, "", where, 0)


def _items(node: Any):
    if isinstance(node, DictConfig):
        for k in node.keys():
            yield str(k), _get(node, k)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield i, _get(node, i)
    elif isinstance(node, Mapping):
        yield from ((str(k), v) for k, v in node.items())
    elif isinstance(node, list | tuple):
        yield from enumerate(node)


def _get(node: DictConfig | ListConfig, key: Any) -> Any:
    try:
        return node[key]
    except OmegaConfBaseException:  # resolution failed: the raw value, checked as written
        return node._get_node(key)._value()


def _walk(node: Any, key: str, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise UnsafeConfigError(f"{where}: {key}: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(node, Mapping | DictConfig):
        items = dict(_items(node))
        if "_target_" in items:
            target_key = f"{key}._target_" if key else "_target_"
            check_target(items["_target_"], target_key, where)
            if items["_target_"] == _METHOD_GETTER:
                check_target(items.get("path"), f"{key}.path" if key else "path", where, METHOD)
            if "_args_" in items:  # named arguments only: the write policy checks them by name
                where_args = f"{where}: {key + '.' if key else ''}_args_"
                raise UnsafeConfigError(
                    f"{where_args}: positional arguments are not accepted; name each argument"
                )
        for k, child in items.items():
            _walk(child, f"{key}.{k}" if key else k, where, depth + 1)
    elif isinstance(node, list | tuple | ListConfig):
        for i, child in _items(node):
            _walk(child, f"{key}[{i}]", where, depth + 1)
