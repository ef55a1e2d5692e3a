"""Live payloads, as an attacker editing a cloned task would write them. Each one, if it ran,
creates its marker file; every test asserts the marker is absent after the refusal, and
:func:`test_payloads.test_each_payload_is_live` proves each would indeed run unguarded."""

from __future__ import annotations

import os
from pathlib import Path

import torch


class Pickled:
    """Unpickling this runs a shell command: what a crafted file carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_pickle(folder: Path, marker: Path) -> Path:
    """A file ``torch.load(weights_only=False)`` would run the command from."""
    path = folder / "evil.pt"
    torch.save({"state_dict": {}, "payload": Pickled(marker)}, path)
    return path


def write_node(source: Path, marker: Path) -> dict:
    """``shutil.copyfile`` reached by walking attributes of a lightdet module that imports
    ``shutil`` (Hydra's own block-list stops ``os.system``, not this): it writes ``marker``."""
    return {
        "_target_": "lightdet.data.shapes.shutil.copyfile",
        "_args_": [str(source), str(marker)],
    }


def unpickle_node(path: Path) -> dict:
    """``torch.load(weights_only=False)`` reached through a lightdet module that imports torch."""
    return {
        "_target_": "lightdet.guard.checkpoints.torch.load",
        "f": str(path),
        "weights_only": False,
    }


def create_value(node: dict) -> str:
    """The node hidden in an ``oc.create`` resolver: a string until it is resolved."""
    return "${oc.create:{" + ", ".join(f"{k}: {_value(v)}" for k, v in node.items()) + "}}"


def override(key: str, node: dict) -> str:
    """``node`` as a command-line override value (Hydra's grammar)."""
    return f"{key}={{{','.join(f'{k}:{_value(v)}' for k, v in node.items())}}}"


def _value(value) -> str:
    """A leaf as both OmegaConf's and Hydra's grammars read it: strings single-quoted."""
    if isinstance(value, list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'" if isinstance(value, str) else str(value)
