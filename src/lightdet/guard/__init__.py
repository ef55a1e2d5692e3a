"""What a config may create, what a checkpoint may hold, where lightdet may write.

Configs arrive from the command line, from a task cloned and edited in ClearML (re-run by an
agent with every ``Hydra/*`` value as an override), and stored inside checkpoints: whatever a
config can make lightdet do, a dashboard user can make an agent do. So:

- :mod:`~lightdet.guard.targets`: every ``_target_`` is located as Hydra would and must be an
  allowed object (never a path walking out through an imported module, never an unpickler);
- :mod:`~lightdet.guard.interpolations`: resolvers that build nodes or read the environment
  are refused;
- :mod:`~lightdet.guard.hydra_guard`: Hydra's own instantiating nodes cannot be overridden, and
  the checks run inside composition, before Hydra acts;
- :mod:`~lightdet.guard.checkpoints`: ``weights_only`` loading; stored configs checked too;
- :mod:`~lightdet.guard.schema`: every config value of its declared type and range;
- :mod:`~lightdet.guard.secrets`: credential values scrubbed from whatever is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from lightdet.guard.checkpoints import (
    BadCheckpointFileError,
    CheckpointFacts,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    check_checkpoint_file,
    check_checkpoint_fits,
    check_classes,
    check_stored_config,
    inspect_checkpoint,
    load_checkpoint,
)
from lightdet.guard.interpolations import check_interpolations
from lightdet.guard.schema import ConfigValueError, check_schema
from lightdet.guard.secrets import scrub_config
from lightdet.guard.targets import UnsafeConfigError, allow_targets, check_targets


def secure_config(cfg: DictConfig | Mapping, where: str = "config") -> None:
    """Refuse a config that could run unexpected code or holds a value its schema refuses
    (:mod:`~lightdet.guard.schema`); scrub credential values (in place).

    Entry points call it before creating anything, whichever way the config arrived (composed
    by Hydra, loaded from a dashboard-edited YAML, built in Python).
    """
    check_interpolations(cfg, where)
    check_targets(cfg, where)
    if isinstance(cfg, DictConfig):
        check_schema(cfg, where)  # composition checked it; a config built in Python is too
        scrub_config(cfg, where)


__all__ = [
    "BadCheckpointFileError",
    "CheckpointFacts",
    "CheckpointMismatchError",
    "ConfigValueError",
    "UnsafeCheckpointError",
    "UnsafeConfigError",
    "allow_targets",
    "check_checkpoint_file",
    "check_checkpoint_fits",
    "check_classes",
    "check_stored_config",
    "check_targets",
    "inspect_checkpoint",
    "load_checkpoint",
    "secure_config",
]
