"""The shape of the package: the floors (imports only go down, no cycle), one rule for every
command (``<command>.py`` over ``runs/<command>.py``), and a Python API that imports nothing
heavy until it is used."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lightdet

SRC = Path(lightdet.__file__).parent
# the commands that compose a config: python -m lightdet.<name>, body in lightdet.runs.<name>
COMMANDS = (
    "train",
    "evaluate",
    "predict",
    "export",
    "hpo",
    "study",
    "show_augment",
    "anchors",
    "show_config",
)
# the tools around them (no config): make doctor, make clean, the Make adapter
TOOLS = ("doctor", "clean", "makeargs")
ENTRY_POINTS = {f"lightdet.{name}" for name in (*COMMANDS, *TOOLS)}
# floor -> the floors above it, which it must never import
FLOORS = {
    "guard": ("runs", "lightning", "tracking"),
    "data": ("runs", "lightning", "tracking"),
    "models": ("runs", "lightning", "tracking"),
    "lightning": ("runs", "tracking"),
    "search": ("runs", "tracking"),
}
HEAVY = (
    "clearml",
    "pytorch_lightning",
    "lightning",
    "hydra",
    "omegaconf",
    "albumentations",
    "torchmetrics",
)


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(("lightdet", *(parts[:-1] if parts[-1] == "__init__" else parts)))


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
        module = _module(path)
        for name in _imports(path) & ENTRY_POINTS:
            if name != module:
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_every_entry_point_is_listed_and_every_command_has_its_body_under_runs():
    """A module with a ``__main__`` block is a command or a tool, and a command's body is
    ``runs/<the same name>.py``: ``make compare`` -> ``study.py`` -> ``runs/study.py``."""
    mains = {_module(p) for p in SRC.glob("*.py") if '__name__ == "__main__"' in p.read_text()}
    assert mains == ENTRY_POINTS
    bodies = {p.stem for p in (SRC / "runs").glob("*.py")}
    assert [name for name in COMMANDS if name not in bodies] == []
    for name in COMMANDS:  # the entry imports its body, and no other command's
        runs = {
            ".".join(m.split(".")[:3])
            for m in _imports(SRC / f"{name}.py")
            if m.startswith("lightdet.runs.")
        }
        assert f"lightdet.runs.{name}" in runs, name
        assert runs <= {f"lightdet.runs.{name}", "lightdet.runs.preflight"}, name


def test_imports_only_go_down():
    """guard, data and models never import runs, lightning or tracking; lightning and search
    never import tracking (functions' own imports included)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        module = _module(path)
        floor = module.split(".")[1] if "." in module else ""
        above = tuple(f"lightdet.{name}" for name in FLOORS.get(floor, ()))
        offenders += [
            f"{module} imports {name}"
            for name in sorted(_imports(path))
            if above and name.startswith(above) and name.split(".")[1] in FLOORS[floor]
        ]
    assert offenders == []


def test_the_import_graph_has_no_cycle():
    """Between lightdet's own modules, functions' own imports included (a package importing
    its own submodules is no cycle)."""
    graph = {_module(p): _imports(p) for p in SRC.rglob("*.py")}
    graph = {
        m: {n for n in names if n in graph and n != m and not n.startswith(m + ".")}
        for m, names in graph.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycles.append(" -> ".join([*path[path.index(name) :], name]))
            elif name not in state:
                visit(name, [*path, name])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def _run(code: str) -> str:
    """``code`` in a fresh interpreter (this one has imported half the package already)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_api_imports_nothing_heavy():
    """Every public name, loaded: a superset of what ``import lightdet`` and
    ``from lightdet import Detector`` load."""
    code = (
        "import sys, json; from lightdet import Detector, Detections, train, evaluate; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
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
    assert out == [
        "refused: True",
        "refused: True",
        "evaluate: split: expected 'val' or 'test', got 'train'",
    ]
