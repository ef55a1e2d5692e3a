"""What a command needs, checked when its config is composed: before a run folder, a ClearML
task or an offline session exists. A failed check is one line naming the problem and the fix.
Each entry point declares its checks (``hydra_entry(name, preflight=training)``); the guard
runs them on the composed config without knowing the commands.

Also where ``evaluate`` takes its data from: the data config the checkpoint was trained with,
unless the command line chooses other data (``data=...``) or changes it (``data.<key>=...``,
applied on top of the checkpoint's).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)
_NOTES: list[str] = []  # said at composition, before Hydra configures logging: logged later


def say_notes() -> None:
    """Log what the checks decided (the run's logging is configured by now)."""
    while _NOTES:
        log.info(_NOTES.pop(0))


class InputError(ValueError, CompactHydraException):
    """A command's input that cannot work; printed by Hydra as its message alone."""


def data_overrides(overrides: Sequence[str]) -> tuple[bool, list[str]]:
    """``(a data config chosen, the data keys set)`` by command-line overrides."""
    chosen, keys = False, []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "data":
            chosen = True
        elif key.startswith("data."):
            keys.append(key)
    return chosen, keys


def use_checkpoint_data(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """``evaluate`` and ``export`` (``data_from: checkpoint``): the checkpoint's data config,
    with the command line's ``data.<key>=...`` on top; left alone when ``data=...`` chose other
    data. Said in one line either way."""
    if cfg.get("data_from", "config") != "checkpoint" or not cfg.get("ckpt_path"):
        return
    chosen, keys = data_overrides(overrides)
    target = OmegaConf.select(cfg, "data.source._target_", default="?")
    if chosen:
        _NOTES.append(f"data: {target}, as chosen on the command line (not the checkpoint's)")
        return
    from lightdet.guard import check_stored_config, inspect_checkpoint

    stored = inspect_checkpoint(cfg.ckpt_path).data  # read at composition, once
    if not stored:
        _NOTES.append(f"data: {target} (the checkpoint holds no data config)")
        return
    data = OmegaConf.create(stored)
    check_stored_config(OmegaConf.to_container(data), f"{cfg.ckpt_path}: config.data")
    for key in keys:  # the command line's changes, as composed onto this config's data
        OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), merge=False)
    with open_dict(cfg):
        cfg.data = data
    changed = f"; with {', '.join(keys)} from the command line" if keys else ""
    _NOTES.append(
        f"data: the checkpoint's ({data.source.get('_target_', '?')}){changed}; "
        "DATA=... (data=...) scores other data"
    )


def check_split(cfg: DictConfig) -> None:
    """``evaluate``'s ``split`` must be one the data config has."""
    split = cfg.get("split")
    if split is None or "data" not in cfg:
        return
    if split not in ("val", "test"):
        raise InputError(f"split={split}: expected val or test")
    source = cfg.data.source
    target = str(source.get("_target_", ""))
    shapes = target.endswith("ShapesSource")

    def has(name: str) -> bool:
        return bool(source.get(f"num_{name}", 0)) if shapes else source.get(name) is not None

    if has(split):
        return
    fix = (
        f"set data.source.num_{split}=<images>"
        if shapes
        else f"set data.source.{split}=<its split name>"
    )
    other = "test" if split == "val" else "val"
    use = f"use split={other}, or " if has(other) else ""  # never the split that failed
    raise InputError(
        f"split={split}: the data ({target.rsplit('.', 1)[-1]}) has no {split} split; {use}{fix}"
    )


def check_server(cfg: DictConfig) -> None:
    """A run enqueued for a ClearML agent needs a server that answers."""
    opts = OmegaConf.select(cfg, "logger.clearml")
    queue = opts.get("remote_queue") if opts is not None else None
    if not queue:
        return
    from lightdet.tracking.server import server_available, server_configured, shown_host

    if opts.get("offline") or not server_configured():
        raise InputError(
            f"logger.clearml.remote_queue={queue}: no ClearML server is configured; run "
            "`clearml-init` (or set CLEARML_API_HOST, CLEARML_API_ACCESS_KEY, "
            "CLEARML_API_SECRET_KEY) first"
        )
    if not server_available(opts):
        raise InputError(
            f"logger.clearml.remote_queue={queue}: the ClearML server {shown_host()} "
            "does not answer; nothing was enqueued"
        )


def check_resumable(cfg: DictConfig) -> None:
    """Training from ``ckpt_path`` resumes: the file must hold a training state, not weights
    only (the best checkpoint)."""
    path = cfg.get("ckpt_path")
    if "callbacks" not in cfg or not path or path == "auto":  # train's config has callbacks
        return
    from pathlib import Path

    from lightdet.guard import inspect_checkpoint

    if not inspect_checkpoint(path).resumable:
        raise InputError(
            f"ckpt_path: {path}: holds weights only (a best checkpoint), no training state to "
            f"resume; resume from {Path(path).with_name('last.ckpt')} (or RESUME=auto), or use "
            "this file with evaluate, predict or export"
        )


def check_recipe(cfg: DictConfig) -> None:
    """The training recipe's settings that depend on each other (each value's type and range
    is the schema's): batch and lr settings, and a pretrained weights file that exists
    (whether it fits is said when the model is built)."""
    if "callbacks" not in cfg:  # not a training config
        return
    from lightdet.lightning.optimization import plan_batch
    from lightdet.models.weights_file import is_weights_file

    options = cfg.get("optimization") or {}
    try:
        plan_batch(
            1,
            1,
            nominal_batch_size=options.get("nominal_batch_size"),
            lr_reference_batch_size=options.get("lr_reference_batch_size"),
            lr_scaling=options.get("lr_scaling", "linear"),
        )
    except ValueError as err:
        raise InputError(str(err)) from None
    pretrained = OmegaConf.select(cfg, "model.net.pretrained", default=None)
    if is_weights_file(pretrained) and not os.path.isfile(str(pretrained)):
        raise InputError(
            f"model.net.pretrained={pretrained}: no such file (give auto, none, imagenet, "
            "coco, or the path of a weights file)"
        )


def check_generated_data(cfg: DictConfig) -> None:
    """The shapes data is generated into ``data.source.root`` on first use: a root it could
    not write (a file, a user's folder, no permission) is said now, not after the run began."""
    source = OmegaConf.select(cfg, "data.source")
    if source is None or not str(source.get("_target_", "")).endswith(".ShapesSource"):
        return
    from hydra.utils import instantiate

    from lightdet.outputs import ForeignFolderError

    try:
        instantiate(source).check_writable()
    except ForeignFolderError as err:
        raise InputError(str(err)) from None


def training(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """``train`` and ``study``'s preflight: a resumable checkpoint, the recipe, the data's
    folder, the server."""
    check_resumable(cfg)
    check_recipe(cfg)
    check_generated_data(cfg)
    check_server(cfg)


def evaluation(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """``evaluate``'s preflight: which data (the checkpoint's), its split and folder, the
    server."""
    use_checkpoint_data(cfg, overrides)
    check_split(cfg)
    check_generated_data(cfg)
    check_server(cfg)


def exporting(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """``export``'s preflight: which data it verifies on (the checkpoint's) and its folder."""
    use_checkpoint_data(cfg, overrides)
    check_generated_data(cfg)


def data_only(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """``show-augment``'s preflight: the data's folder."""
    check_generated_data(cfg)


def tracked(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """A command that only records into ClearML (``hpo``): the server, where one is needed."""
    check_server(cfg)
