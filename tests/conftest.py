"""Shared fixtures: offline ClearML in a temporary cache, tiny shapes datasets, composed configs."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# make test runs the suite on every core (pytest-xdist): each worker's torch gets its share of
# the usable cores (a container's quota included), set before anything loads torch (OpenMP
# reads it once); its subprocesses inherit it. A count the user chose is kept; importing
# lightdet sets one (threads.apply), so whether there was one is read before.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS_CHOSEN = "OMP_NUM_THREADS" in os.environ

from lightdet.threads import available_cores  # noqa: E402  (loads no torch)

if _WORKERS > 1 and not _THREADS_CHOSEN:
    os.environ["OMP_NUM_THREADS"] = str(max(1, available_cores() // _WORKERS))

# ClearML reads its configuration once per process: set it up before anything imports clearml.
_CLEARML_HOME = Path(tempfile.mkdtemp(prefix="lightdet-clearml-"))
# its offline sessions hold the tests' models (1.5-3 GB a suite run): removed at the end
atexit.register(shutil.rmtree, _CLEARML_HOME, True)
(_CLEARML_HOME / "clearml.conf").write_text("sdk.development.report_use_subprocess: false\n")
os.environ["CLEARML_CONFIG_FILE"] = str(_CLEARML_HOME / "clearml.conf")
os.environ["CLEARML_CACHE_DIR"] = str(_CLEARML_HOME / "cache")
os.environ["CLEARML_OFFLINE_MODE"] = "1"
# the index cache of this session's data, not the user's (~/.cache/lightdet)
os.environ["LIGHTDET_CACHE_DIR"] = str(_CLEARML_HOME / "lightdet-cache")
# pretrained=auto: no downloads, and torch's cache of this session, not the user's (found
# weights would change what own-data tests train)
os.environ["LIGHTDET_WEIGHTS_OFFLINE"] = "1"
os.environ["TORCH_HOME"] = str(_CLEARML_HOME / "torch")
for _key in ("CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY", "CLEARML_API_HOST"):
    os.environ.pop(_key, None)

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from lightdet.cli import CONFIG_DIR  # noqa: E402
from lightdet.data.shapes import ShapesSpec, ensure_shapes  # noqa: E402

# what each slow test took (setup included), to start the longest first: make test-durations
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"write the seconds of each slow test, or any over 1 s, to {DURATIONS.name}",
    )


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (make test): the usable cores, at most 4 (a worker with the runs it starts
    takes up to about 4 GB); ``PYTEST_XDIST_AUTO_NUM_WORKERS`` sets another count."""
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    return max(1, min(4, available_cores()))


def pytest_collection_modifyitems(config, items) -> None:
    """Longest first, a module at a time: ``make test`` gives each worker whole modules
    (``--dist loadscope``: a module's fixtures, such as a reference run or the loopback
    server's base task, are built once), the module whose tests took longest when the
    durations were recorded first (a slow test not there yet counts 30 s, any other 0.1 s),
    so that no long module starts last. Within a module the file's order is kept."""
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    cost: dict[str, float] = {}
    order = []  # (module, its place in the collection) of each item
    for index, item in enumerate(items):
        module = item.nodeid.split("::")[0]
        seconds = known.get(item.nodeid, 30.0 if item.get_closest_marker("slow") else 0.1)
        cost[module] = cost.get(module, 0.0) + seconds
        order.append((module, index))
    first = {module: index for module, index in reversed(order)}
    ranked = sorted(order, key=lambda mi: (-cost[mi[0]], first[mi[0]], mi[1]))
    items[:] = [items[index] for _, index in ranked]


_took: dict[str, float] = {}
_slow: set[str] = set()


def pytest_runtest_logreport(report) -> None:
    _took[report.nodeid] = _took.get(report.nodeid, 0.0) + report.duration
    if "slow" in report.keywords:
        _slow.add(report.nodeid)


def pytest_sessionfinish(session) -> None:
    config = session.config
    if not config.getoption("--record-durations") or hasattr(config, "workerinput"):
        return
    ranked = sorted(_took.items(), key=lambda kv: -kv[1])
    kept = {node: round(s, 1) for node, s in ranked if s >= 1.0 or node in _slow}
    DURATIONS.write_text(json.dumps(kept, indent=1) + "\n")


CLASSES = ("circle", "square", "triangle")  # num_classes = 3 + background
TINY = {"num_train": 16, "num_val": 8, "num_test": 4, "image_size": 96, "max_object_size": 48.0}


@pytest.fixture(scope="session")
def clearml_cache() -> Path:
    """Where offline ClearML sessions of this test run are written."""
    return _CLEARML_HOME / "cache" / "offline"


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """A 28-image shapes dataset (96 px) written once per test session, VOC and COCO layouts."""
    return ensure_shapes(tmp_path_factory.mktemp("data") / "shapes", ShapesSpec(**TINY))


def data_overrides(tmp_path: Path, *, tiny_data: bool = True) -> list[str]:
    """Overrides for paths in ``tmp_path`` and the tiny shapes data, loaded in process."""
    data = [f"++data.source.{k}={v}" for k, v in TINY.items()] if tiny_data else []
    return [f"paths.root_dir={tmp_path}", *data, "data.batch_size=4", "data.num_workers=0"]


def tiny_overrides(tmp_path: Path, *, tiny_data: bool = True, resize: bool = True) -> list[str]:
    """Overrides for a tiny, fast training run with paths in ``tmp_path`` (on tiny shapes data);
    ``resize``: set the RetinaNet-style ``model.net.min_size/max_size`` to 96."""
    sizes = ["model.net.min_size=96", "model.net.max_size=96"] if resize else []
    return [
        *data_overrides(tmp_path, tiny_data=tiny_data),
        *sizes,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=2",
        "+trainer.limit_test_batches=1",
        "trainer.log_every_n_steps=1",
        "+trainer.enable_progress_bar=false",
    ]


def compose_train(tmp_path: Path, *overrides: str, tiny_data: bool = True, resize: bool = True):
    """The training config of :func:`tiny_overrides`, run folder ``tmp_path/run``."""
    tiny = tiny_overrides(tmp_path, tiny_data=tiny_data, resize=resize)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[*tiny, f"paths.output_dir={tmp_path}/run", *overrides],
        )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what a refused run must leave exactly as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def offline_events(session: Path, event_type: str) -> list[dict]:
    """Events of one type in an offline ClearML session (``metrics.jsonl`` holds a list per line):
    ``training_stats_scalar``, ``plot``, ``training_debug_image``."""
    events = []
    for line in (session / "metrics.jsonl").read_text().splitlines():
        batch = json.loads(line)
        events += batch if isinstance(batch, list) else [batch]
    return [e for e in events if e.get("type") == event_type]


def offline_scalars(session: Path) -> list[dict]:
    return offline_events(session, "training_stats_scalar")


def clean_env(**extra: str) -> dict:
    """This process's environment without ClearML settings. In-process tests that call Task.init
    export CLEARML_/TRAINS_PROC_MASTER_ID, and a child that inherits it attaches to that task."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(extra)
    return env


def train_cli_args(tmp_path: Path, data_root: Path, *overrides: str) -> list[str]:
    """``python -m lightdet.train``'s arguments for a 2-epoch run of 2 steps each on tiny
    shapes data, paths in ``tmp_path``."""
    return [
        f"paths.root_dir={tmp_path}",
        f"data.source.root={data_root}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=0",
        "data.batch_size=4",
        "model.net.min_size=96",
        "model.net.max_size=96",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "test=false",
        "callbacks.throughput.window_size=2",
        *overrides,
    ]


def clearml_env(tmp_path: Path, **extra: str) -> dict:
    """A clean environment whose ClearML cache and configuration are in ``tmp_path``."""
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    return clean_env(
        CLEARML_CACHE_DIR=str(tmp_path / "clearml"), CLEARML_CONFIG_FILE=str(conf), **extra
    )


def run_train_cli(tmp_path: Path, data_root: Path, *overrides: str, env: dict | None = None):
    """``python -m lightdet.train`` on tiny shapes data, in a clean ClearML environment.

    Returns the finished process and its offline ClearML session folder.
    """
    command = [sys.executable, "-m", "lightdet.train", *train_cli_args(tmp_path, data_root)]
    command += overrides
    clean = clearml_env(tmp_path, **(env or {}))
    proc = subprocess.run(command, env=clean, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (session,) = [p for p in (tmp_path / "clearml" / "offline").iterdir() if p.is_dir()]
    return proc, session
