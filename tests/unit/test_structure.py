"""The shape of the package: entry points sit on the library, never on each other, and the
Python API imports nothing heavy until it is used."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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


def _run(code: str) -> str:
    """``code`` in a fresh interpreter (this one has imported half the package already)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_api_imports_nothing_heavy():
    """Every public name, loaded: a superset of what ``import lightdet`` and
    ``from lightdet import Detector`` load."""
    code = ("import sys, json; from lightdet import Detector, Detections, train, evaluate; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")  # fmt: skip
    loaded = json.loads(_run(code))
    assert "lightdet" in loaded and "torch" in loaded
    assert [m for m in HEAVY if m in loaded] == []


_BOTH_SPELLINGS = """
import lightdet
from lightdet.runs import compose
function = lightdet.train
assert function is compose.train, function
import lightdet.train as module
assert lightdet.train is module and callable(module)
from lightdet.guard import UnsafeConfigError
for call in (function, lightdet.train):
    try:
        call(["+hydra.callbacks.x._target_=builtins.print"])
    except UnsafeConfigError as err:
        print("refused:", "hydra.callbacks" in str(err))
import lightdet.evaluate as entry
assert lightdet.evaluate is entry
try:
    lightdet.evaluate("x.ckpt", split="train")
except ValueError as err:
    print("evaluate:", err)
"""


def test_lightdet_train_is_the_api_function_whichever_was_imported_first():
    """``import lightdet.train`` (the CLI module) rebinds ``lightdet.train``; the module then
    answers calls as the function does. A refused override shows both reach the same code."""
    out = _run(_BOTH_SPELLINGS).splitlines()
    assert out == ["refused: True", "refused: True",
                   "evaluate: split: expected 'val' or 'test', got 'train'"]  # fmt: skip
