"""One write policy: every config key that names a place lightdet writes is declared here, and
every value of those keys is checked by :func:`check_writes` when the config is composed,
before anything exists.

A write lands

- inside the run's own folder (Hydra's run folder, or the sweep folder of a multirun), which is
  itself new, empty or lightdet's; or
- in a folder that is new or empty; or
- in a folder lightdet itself created: its marker (``.lightdet``) in that folder itself, never
  inherited from a folder above (:mod:`lightdet.outputs`).

A key of kind :data:`NAME` is a plain file or folder name (joined to a folder checked above),
never a path. A :data:`STORAGE` is a database URL: an SQLite file, however the URL spells it,
is a file under the rule above and must be new or already an Optuna study; a database server
is the operator's. Keys that name places lightdet only *reads* are declared in :data:`READS`,
and the folders the others are made of in :data:`BASES`; a test composes every entry point's
config and fails on any value that looks like a path under a key declared nowhere, so a new
key cannot slip by. Hydra keys an override may set are these declarations plus
:data:`HYDRA_SETTINGS`; every other ``hydra.*`` key is refused (:mod:`.hydra_guard`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from lightdet import outputs
from lightdet.guard.targets import UnsafeConfigError

FOLDER = "a folder lightdet writes into"
FILE = "a file lightdet writes"
NAME = "a plain file or folder name"
STORAGE = "a study storage URL"
UPLOAD = "where ClearML uploads models"

# key (``*``: any one key) -> kind
WRITES: dict[str, str] = {
    "hydra.run.dir": FOLDER,
    "hydra.sweep.dir": FOLDER,
    "hydra.sweep.subdir": NAME,  # ${hydra.job.num} / ${hydra.job.id} only
    "hydra.job.name": NAME,  # Hydra's log file, <name>.log
    "hydra.output_subdir": NAME,  # Hydra's record of the config (.hydra)
    "paths.output_dir": FOLDER,
    "output_dir": FOLDER,  # predict, export
    "trainer.default_root_dir": FOLDER,
    "callbacks.*.dirpath": FOLDER,
    "callbacks.*.filename": NAME,
    "study.dir": FOLDER,
    "hpo.storage": STORAGE,
    "logger.clearml.output_uri": UPLOAD,
    "output": FILE,  # show_augment's grid
}
# the file names a FILE key may have: what its writer can write
FILE_SUFFIXES: dict[str, tuple[str, ...]] = {"output": (".png", ".jpg", ".jpeg")}
# keys that name places lightdet only reads (the shapes source writes its generated data into
# data.source.root only after claiming it: new, empty or its own generated dataset)
READS: tuple[str, ...] = (
    "ckpt_path",
    "input",
    "model.net.pretrained",
    "study.checkpoints",
    "data.source.root",
    "data.source.roots",
    "data.source.annotations",
    "data.source.images",
    "data.source.train",
    "data.source.val",
    "data.source.test",
    "data.source.data_yaml",
    "data.source.image_root",
    "data.source.classes_file",
)
# the folders the keys above are made of (nothing is written into them directly)
BASES: tuple[str, ...] = ("paths.root_dir", "paths.data_dir", "paths.log_dir")
# Hydra settings an override may set that name no place
HYDRA_SETTINGS: tuple[str, ...] = ("hydra.job.chdir", "hydra.verbose", "hydra.mode")
_SUBDIR_INTERPOLATIONS = ("${hydra.job.num}", "${hydra.job.id}")
# arguments that name a place a registered target writes, checked on every node with a
# ``_target_`` wherever it sits in the config (not only under the keys above)
WRITE_ARGUMENTS: dict[str, str] = {"dirpath": FOLDER, "filename": NAME, "default_root_dir": FOLDER}
# a format field of a checkpoint file name: a metric name and at most a numeric spec (a fill
# character would let str.format make '/' at run time: '{epoch:/>3}' is '//0', an absolute path)
_FIELD = re.compile(r"\{[\w/.\-]+(:0?\d*(\.\d+)?[dfeg%]?)?\}")


def hydra_keys() -> tuple[str, ...]:
    """The ``hydra.*`` keys an override may set."""
    return tuple(k for k in WRITES if k.startswith("hydra.")) + HYDRA_SETTINGS


def declared(key: str) -> str | None:
    """How ``key`` is declared: a write kind, ``"read"``, ``"base"``, or None."""
    for pattern, kind in WRITES.items():
        if _matches(pattern, key):
            return kind
    if any(_matches(p, key) or key.startswith(p + "[") for p in READS):
        return "read"
    return "base" if key in BASES else None


def _matches(pattern: str, key: str) -> bool:
    parts, keys = pattern.split("."), key.split(".")
    return len(parts) == len(keys) and all(p in ("*", k) for p, k in zip(parts, keys))


def _present(cfg: DictConfig, pattern: str) -> list[str]:
    """The keys of ``cfg`` that ``pattern`` names."""
    found = [""]
    for part in pattern.split("."):
        nxt = []
        for prefix in found:
            node = OmegaConf.select(cfg, prefix) if prefix else cfg
            if not isinstance(node, DictConfig):
                continue
            names = [str(k) for k in node.keys()] if part == "*" else [part]
            nxt += [f"{prefix}.{n}" if prefix else n for n in names if n in node]
        found = nxt
    return found


@contextlib.contextmanager
def resolving(cfg: DictConfig, multirun: bool) -> Iterator[tuple[DictConfig, Path | None]]:
    """A copy of ``cfg`` whose ``${hydra:...}`` values resolve as they will in the job (its
    output folder: the run folder, or the first job's folder of a sweep), and that folder."""
    from hydra.core.hydra_config import HydraConfig

    work = copy.deepcopy(cfg)
    if "hydra" not in work:
        yield work, None
        return
    singleton = HydraConfig.instance()
    before = singleton.cfg
    with open_dict(work):
        work.hydra.job.num = work.hydra.job.get("num") or 0
        work.hydra.job.id = work.hydra.job.get("id") or "0"
        try:
            base = Path(str(work.hydra.sweep.dir if multirun else work.hydra.run.dir))
            job = base / str(work.hydra.sweep.subdir) if multirun else base
        except OmegaConfBaseException as err:
            raise UnsafeConfigError(f"config: the run folder does not resolve ({err})") from None
        work.hydra.runtime.output_dir = os.path.abspath(job)
    try:
        singleton.set_config(work)
        yield work, Path(os.path.abspath(base))
    finally:
        singleton.cfg = before


def value_of(cfg: DictConfig, key: str) -> Any:
    """``key``'s value, resolved (a value that does not resolve: as written)."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    if not OmegaConf.is_config(value):
        return value
    try:
        return OmegaConf.to_container(value, resolve=True)
    except OmegaConfBaseException:  # a part that does not resolve here: as written
        return OmegaConf.to_container(value, resolve=False)


def check_writes(cfg: DictConfig, *, multirun: bool = False) -> None:
    """Every declared write key of ``cfg`` against the policy above; the error names the key,
    its value and the rule. Hydra's run folder itself is checked by the composition guard
    (new, empty or lightdet's), and the sweep folder here."""
    sweep = OmegaConf.select(cfg, "hydra.sweep")
    if isinstance(sweep, DictConfig) and "subdir" in sweep:  # as written: ${hydra.job.num}
        _check_subdir(sweep._get_node("subdir")._value())  # does not resolve before the job
    with resolving(cfg, multirun) as (work, run_folder):
        if multirun and run_folder is not None:  # the sweep folder itself: new, empty or ours
            check_folder("hydra.sweep.dir", str(run_folder), None)
        for pattern, kind in WRITES.items():
            for key in _present(work, pattern):
                if key in ("hydra.sweep.subdir", "hydra.run.dir", "hydra.sweep.dir"):
                    continue  # above, and the run folder by the composition guard
                value = value_of(work, key)
                if value is not None:
                    _check(kind, key, value, run_folder)
        body = {k: value_of(work, k) for k in work if k != "hydra"}
        _check_target_arguments(body, "", run_folder)


def _check_target_arguments(node: Any, key: str, run_folder: Path | None) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            for name, kind in WRITE_ARGUMENTS.items():
                if node.get(name) is not None:
                    _check(kind, f"{key}.{name}".lstrip("."), node[name], run_folder)
        for k, child in node.items():
            _check_target_arguments(child, f"{key}.{k}".lstrip("."), run_folder)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _check_target_arguments(child, f"{key}[{i}]", run_folder)


def _check(kind: str, key: str, value: Any, run_folder: Path | None) -> None:
    if not isinstance(value, str):
        raise UnsafeConfigError(f"config: {key}={value!r}: expected {kind}")
    if kind == NAME:
        check_name(key, value)
    elif kind == FOLDER:
        check_folder(key, value, run_folder)
    elif kind == FILE:
        check_file(key, value, run_folder)
    elif kind == UPLOAD:
        check_upload(key, value, run_folder)
    else:
        check_storage(key, value, run_folder)


def check_name(key: str, value: str) -> None:
    """A plain name: no separator, not ``.`` or ``..``, no NUL; format fields (a checkpoint's
    ``{epoch:03d}``) only with a numeric spec."""
    plain = _FIELD.sub("0", value)
    if "{" in plain or "}" in plain:
        raise UnsafeConfigError(
            f"config: {key}={value!r}: a format field may hold a name and a "
            "numeric spec only ('{epoch:03d}', '{val/map:.3f}')"
        )
    if value in ("", ".", "..") or plain in (".", "..") or re.search(r"[/\\\x00]", plain):
        raise UnsafeConfigError(
            f"config: {key}={value!r}: must be a plain name (no '/', not "
            "'..'): it is joined to a folder lightdet checked"
        )


def _check_subdir(raw: Any) -> None:
    if raw is None:
        return
    text = str(raw)
    for allowed in _SUBDIR_INTERPOLATIONS:
        text = text.replace(allowed, "0")
    if "${" in text:
        raise UnsafeConfigError(
            f"config: hydra.sweep.subdir={raw!r}: only "
            f"{' and '.join(_SUBDIR_INTERPOLATIONS)} may be used"
        )
    check_name("hydra.sweep.subdir", text)


def _inside(path: Path, run_folder: Path | None) -> bool:
    if run_folder is None:
        return False
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(run_folder)))


def check_folder(key: str, value: str, run_folder: Path | None) -> None:
    """Inside the run folder, or new, empty or lightdet's (its own marker)."""
    path = Path(os.path.abspath(value))
    if _inside(path, run_folder):
        return
    try:
        outputs.check_free(path, key)
    except outputs.ForeignFolderError as err:
        raise UnsafeConfigError(f"config: {err}") from None


def check_file(key: str, value: str, run_folder: Path | None) -> None:
    """A file whose folder passes :func:`check_folder`; an existing file only in lightdet's
    own folder (the writer then checks that it is its own kind of file)."""
    path = Path(os.path.abspath(value))
    if path.is_dir():
        raise UnsafeConfigError(f"config: {key}={value}: is a folder, expected {FILE}")
    suffixes = FILE_SUFFIXES.get(key, ())
    if suffixes and path.suffix.lower() not in suffixes:
        raise UnsafeConfigError(
            f"config: {key}={value}: expected a file name ending in {', '.join(suffixes)}"
        )
    if path.exists() and not (_inside(path, run_folder) or outputs.is_ours(path.parent)):
        raise UnsafeConfigError(
            f"config: {key}={value}: the file exists and lightdet did not "
            "write it; choose another name"
        )
    check_folder(key, str(path.parent), run_folder)


# object stores and file servers: the operator's; ClearML writes new objects there
_REMOTE_SCHEMES = ("s3", "gs", "azure", "http", "https")


def local_upload_folder(value: str) -> Path | None:
    """The local folder an ``output_uri`` names (a path or ``file://``); None for a remote
    store."""
    scheme, sep, rest = value.partition("://")
    if sep and scheme.lower() in _REMOTE_SCHEMES:
        return None
    return Path(os.path.abspath(rest if sep and scheme.lower() == "file" else value))


def check_upload(key: str, value: str, run_folder: Path | None) -> None:
    """A remote store (s3://, gs://, azure://, a file server's http(s)://), or a local folder
    under the folder rule (ClearML copies each model into it); another scheme is refused."""
    scheme, sep, _ = value.partition("://")
    if sep and scheme.lower() not in (*_REMOTE_SCHEMES, "file"):
        raise UnsafeConfigError(
            f"config: {key}={value!r}: expected s3://, gs://, azure://, http(s):// or a "
            "local folder"
        )
    folder = local_upload_folder(value)
    if folder is not None:
        check_folder(key, str(folder), run_folder)


def sqlite_file(url: str, key: str = "hpo.storage") -> Path | None:
    """The file an SQLite URL writes, however it is spelt (``sqlite:///``, ``sqlite+pysqlite``,
    upper case); None for a database server or an in-memory database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        raise UnsafeConfigError(f"config: {key}={url!r}: not a database URL ({err})") from None
    if parsed.get_backend_name().lower() != "sqlite":
        return None
    if parsed.query:
        raise UnsafeConfigError(
            f"config: {key}={url!r}: an SQLite URL with options "
            f"({', '.join(parsed.query)}) is not accepted; give a plain "
            "sqlite:///<file>"
        )
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(os.path.abspath(parsed.database))


def check_storage(key: str, value: str, run_folder: Path | None) -> None:
    """An SQLite file is new (in a folder the policy allows) or already an Optuna study."""
    path = sqlite_file(value, key)
    if path is None:
        return
    if path.exists() and not outputs.is_optuna_storage(path):
        raise UnsafeConfigError(
            f"config: {key}={value}: {path} exists and is not an Optuna "
            "study; lightdet never changes such files"
        )
    if not path.exists():
        check_folder(key, str(path.parent), run_folder)
