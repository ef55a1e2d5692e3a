"""Which callables a config may name as ``_target_``: decided on the object, not the string.

Hydra resolves a dotted path by importing its first part and then walking attributes, so
``lightdet.guard.checkpoints.torch.load`` *is* ``torch.load``. A string prefix check cannot see
that; here every target is located exactly as Hydra locates it, and the object found must be

- a public class or function *defined* in one of lightdet's component modules (models, the
  Lightning system and datamodule, data sources and transforms, schedulers, callbacks), or
- one of an explicit list of torch optimizers, Lightning callbacks and the Lightning ``Trainer``.

Nothing that unpickles (``torch.load``, ``pickle.load``...) is on either list. Before anything is
imported, the path must start with a package lightdet's configs use, so checking a config never
imports a module a config chose. Extending the set is a code-level decision:
:func:`allow_targets` in an entry script of your own, never a config or environment variable.
"""

from __future__ import annotations

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
    line naming the key, not as a traceback through Hydra's internals.
    """


# lightdet's modules whose classes and functions are configuration components
_COMPONENT_MODULES: dict[str, str] = {
    "lightdet.models": "any",
    "lightdet.lightning": "any",
    "lightdet.data.sources": "any",
    "lightdet.data.transforms": "any",
    "lightdet.data.checks": "any",
    "lightdet.data.dataset": "any",
    "lightdet.tracking.callbacks": "classes",  # not export_weights: it writes a file anywhere
    "lightdet.tracking.results": "classes",  # its folder is claimed like a checkpoint folder
}
# explicit third-party callables, by module and name (looked up, then compared by identity)
_EXPLICIT: dict[str, tuple[str, ...]] = {
    "torch.optim": ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam",
                    "RAdam", "ASGD", "Rprop", "LBFGS"),  # fmt: skip
    "pytorch_lightning": ("Trainer",),
    "pytorch_lightning.callbacks": (
        "ModelCheckpoint", "ThroughputMonitor", "LearningRateMonitor", "EarlyStopping",
        "ModelSummary", "RichModelSummary", "TQDMProgressBar", "RichProgressBar",
        "StochasticWeightAveraging", "GradientAccumulationScheduler", "Timer",
        "DeviceStatsMonitor", "EMAWeightAveraging",
    ),  # fmt: skip
}
# returns a function by name (a batch-size function): its ``path`` is checked as a target too
_METHOD_GETTER = "hydra.utils.get_method"
# the only packages a path may start with: nothing else is imported to check it
_ROOTS = ("lightdet.", "torch.optim.", "pytorch_lightning.", _METHOD_GETTER)
_extra_modules: set[str] = set()
_MAX_DEPTH = 64


def allow_targets(*modules: str) -> None:
    """Allow the public classes and functions defined in ``modules`` (and their submodules).

    Call it in an entry script of your own, before the config is checked::

        from lightdet.guard import allow_targets
        allow_targets("mypkg.models")
        import lightdet.train
        lightdet.train.main()  # the CLI; or the Python API: lightdet.train([...])

    A config can never do this: it is code the machine's operator runs.
    """
    for module in modules:
        if not module or module.startswith(".") or module.endswith("."):
            raise ValueError(f"allow_targets: {module!r} is not a module name")
        _extra_modules.add(module)


def _in_module(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@functools.cache
def _explicit_objects() -> tuple[Any, ...]:
    import importlib

    found = []
    for module_name, names in _EXPLICIT.items():
        module = importlib.import_module(module_name)
        found += [getattr(module, n) for n in names if hasattr(module, n)]
    return tuple(found)


def is_allowed_object(obj: Any) -> bool:
    """Whether ``obj`` (already located) may be called by ``instantiate``."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False  # modules, builtins, bound methods, instances: never
    if any(obj is allowed for allowed in _explicit_objects()):
        return True
    module, qualname = getattr(obj, "__module__", "") or "", getattr(obj, "__qualname__", "")
    if "<locals>" in qualname or any(part.startswith("_") for part in qualname.split(".")):
        return False
    for package, kind in _COMPONENT_MODULES.items():
        if _in_module(module, package):
            return kind == "any" or inspect.isclass(obj)
    return any(_in_module(module, package) for package in _extra_modules)


def _locate(path: str) -> Any:
    from hydra._internal.utils import _locate as hydra_locate  # exactly what instantiate does

    return hydra_locate(path)


def check_target(path: Any, key: str, where: str) -> None:
    """Raise naming ``key`` unless ``path`` locates to an allowed object."""
    name = f"{where}: {key}={path!r}"
    if not isinstance(path, str):
        raise UnsafeConfigError(f"{name}: a target must be a dotted path")
    if "${" in path:
        raise UnsafeConfigError(f"{name}: an interpolated target is not allowed")
    roots = _ROOTS + tuple(m + "." for m in _extra_modules)
    if not (path == _METHOD_GETTER or path.startswith(roots)):
        raise UnsafeConfigError(f"{name} is not an allowed target ({_allowed_text()})")
    try:
        obj = _locate(path)
    except (ImportError, ValueError, AttributeError) as err:
        raise UnsafeConfigError(f"{name}: cannot be located ({str(err).splitlines()[0]})") from err
    if path == _METHOD_GETTER:
        return  # its `path` argument is checked by the caller
    if not is_allowed_object(obj):
        raise UnsafeConfigError(
            f"{name} is not an allowed target: it is {_describe(obj)} ({_allowed_text()})"
        )


def _describe(obj: Any) -> str:
    if inspect.ismodule(obj):
        return f"the module {obj.__name__}"
    if hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__name__} object"


def _allowed_text() -> str:
    lists = ", ".join(f"{m}.{{{','.join(n)}}}" for m, n in _EXPLICIT.items())
    return (f"allowed: classes and functions defined in {', '.join(_COMPONENT_MODULES)}"
            f"{', ' + ', '.join(sorted(_extra_modules)) if _extra_modules else ''}; and {lists}; "
            "extend in code with lightdet.guard.allow_targets")  # fmt: skip


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
                check_target(items.get("path"), f"{key}.path" if key else "path", where)
        for k, child in items.items():
            _walk(child, f"{key}.{k}" if key else k, where, depth + 1)
    elif isinstance(node, list | tuple | ListConfig):
        for i, child in _items(node):
            _walk(child, f"{key}[{i}]", where, depth + 1)
