"""What every Hydra entry point shares: the config folder, the guard inside Hydra's composition,
the credential scrubber on every log handler, a run folder marked as lightdet's, and the entry
module callable as the Python API's function of the same name.

Entry points use :func:`hydra_entry` instead of ``hydra.main``; importing this module installs
the composition guard, so ``hydra.compose`` in the same process is guarded too.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from lightdet import outputs, quiet
from lightdet.guard import hydra_guard
from lightdet.guard.secrets import install_log_scrubber

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
hydra_guard.install()
quiet.install()  # messages that need no action, filtered at their source


def hydra_entry(
    config_name: str, preflight: hydra_guard.Preflight | None = None
) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """``@hydra.main`` on ``conf/<config_name>.yaml``, guarded (see :mod:`lightdet.guard`);
    ``preflight(cfg, overrides)``: the command's own checks of its inputs, run by the guard on
    the composed config before any folder exists (:mod:`lightdet.runs.preflight`)."""

    def decorate(task_function: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task_function)
        def run(cfg: DictConfig) -> Any:
            install_log_scrubber()  # Hydra configured the handlers just before this call
            # checked to be new, empty or lightdet's by the composition guard
            outputs.mark(HydraConfig.get().runtime.output_dir, "run")
            with file_errors_in_one_line(config_name):
                return task_function(cfg)

        main = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(run)

        @functools.wraps(main)
        def entry(*args: Any, **kwargs: Any) -> Any:
            hydra_guard.use_preflight(preflight)
            return main(*args, **kwargs)

        return entry

    return decorate


# what the machine refuses a file for (no space, no permission, read-only), said in one line
_FILE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class FileError(CompactHydraException):
    """A file the machine refused to read or write (``errno``, ``filename``: the cause's);
    printed by Hydra as one line."""

    def __init__(self, message: str, cause: OSError) -> None:
        super().__init__(message)
        self.errno, self.filename = cause.errno, cause.filename


@contextlib.contextmanager
def file_errors_in_one_line(command: str) -> Iterator[None]:
    """A full disk, a read-only or forbidden folder, a folder lightdet may not write into,
    met during a run: one line naming the command, the reason and the file, not a traceback
    (other errors pass unchanged)."""
    try:
        yield
    except outputs.ForeignFolderError as err:  # a folder refused after the run began
        raise FileError(f"{command}: {err}", err) from err
    except OSError as err:
        if err.errno not in _FILE_ERRORS:
            raise
        where = f": {err.filename}" if err.filename else ""
        raise FileError(f"{command}: {err.strerror}{where}", err) from err


class _CallableModule(types.ModuleType):
    """An entry module that answers calls with the API function of the same name."""

    _api: tuple[str, str]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, name = self._api
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def callable_module(name: str, api_module: str, function: str) -> None:
    """Make the imported entry module ``name`` callable as ``api_module.function``.

    ``lightdet.train`` is two things: the module ``python -m lightdet.train`` runs, and the
    function ``lightdet.train(overrides=[...])``. Importing a submodule rebinds the package's
    attribute to the module, so the module itself answers the call, and both spellings work
    whatever was imported first. (Run as ``__main__`` it is not the package's attribute.)
    """
    module = sys.modules[name]
    if name != "__main__":
        module.__class__ = _CallableModule
        module._api = (api_module, function)
