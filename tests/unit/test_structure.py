"""The shape of the package: entry points sit on the library, never on each other, and the
Python API imports nothing heavy until it is used."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lightdet

SRC = Path(lightdet.__file__).parent
ENTRY_POINTS = {"lightdet.train", "lightdet.evaluate", "lightdet.hpo", "lightdet.show_augment"}
HEAVY = ("clearml", "pytorch_lightning", "lightning", "hydra", "omegaconf", "albumentations",
         "torchmetrics")  # fmt: skip


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_module_imports_an_entry_point():
    offenders = []
    for path in SRC.rglob("*.py"):
        module = "lightdet." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        for name in _imports(path) & ENTRY_POINTS:
            if name != module:
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys, json; {statement}; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("statement", ["import lightdet", "from lightdet import Detector",
                                       "from lightdet import Detector, Detections, train, evaluate"])
def test_the_api_imports_nothing_heavy(statement):
    loaded = _loaded_after(statement)
    assert "lightdet" in loaded
    assert [m for m in HEAVY if m in loaded] == []


def test_lightdet_train_is_the_api_function_whichever_was_imported_first():
    """``import lightdet.train`` (the CLI module) rebinds ``lightdet.train``; the module then
    answers calls as the function does. A refused override shows both reach the same code."""
    from lightdet.guard import UnsafeConfigError
    from lightdet.runs import compose

    function = lightdet.train
    assert function is compose.train
    import lightdet.train as module  # noqa: F401

    assert lightdet.train is module and callable(lightdet.train)
    for call in (function, lightdet.train):
        with pytest.raises(UnsafeConfigError, match=r"hydra\.callbacks"):
            call(["+hydra.callbacks.x._target_=builtins.print"])
    import lightdet.evaluate as entry

    assert lightdet.evaluate is entry
    with pytest.raises(ValueError, match="split: expected 'val' or 'test'"):
        lightdet.evaluate("x.ckpt", split="train")
