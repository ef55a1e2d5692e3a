"""The config schema: every key of every command has a type (and a range where it matters),
checked at composition; a wrong value is one line naming the key, before anything exists."""

import math
import subprocess
import sys
import types
import typing

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig, OmegaConf

from lightdet.cli import CONFIG_DIR
from lightdet.guard.schema import ConfigValueError, entries, violations
from lightdet.guard.types import Range, describe, fits
from tests.conftest import clean_env

# each command's config, with the values it requires
COMMANDS = {
    "train": [],
    "evaluate": ["ckpt_path=missing.ckpt"],
    "predict": ["ckpt_path=missing.ckpt", "input=photos"],
    "export": ["ckpt_path=missing.ckpt"],
    "hpo": [],
    "study": ["study=focal"],
    "show_augment": [],
}


def _compose(name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=[*COMMANDS[name], *overrides])


@pytest.fixture(scope="module")
def configs() -> dict[str, DictConfig]:
    return {name: _compose(name) for name in COMMANDS}


def _default_kind(value):
    """What the shipped value is, independent of the schema: the kind a wrong value breaks."""
    for kind in (bool, int, float, str):
        if type(value) is kind:
            return kind
    if isinstance(value, ListConfig | list):
        return list
    if isinstance(value, DictConfig | dict):
        return dict
    return None


# wrong for a key whose shipped value is of that kind, whatever else the key allows
_WRONG = {
    bool: ["maybe", 2],
    int: ["abc", True],
    float: ["abc", float("nan"), True],
    str: [[1, 2], {"a": 1}],
    list: ["abc", 3],
    dict: ["abc", [1]],
    None: ["abc", [1, 2], {"a": 1}, -7, 0.5],  # null shipped: the candidates its type refuses
}


def _ranges(annotation):
    """The ranges on the value itself (a union's arms), not on a list's items."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _ranges(arg)
    yield from (m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Range))


def _outside(limit: Range) -> list:
    """Numbers just outside a range (integers: the same numbers fail an integer type too)."""
    values = [float("inf")] if limit.finite else []
    for bound, step in ((limit.ge, -1), (limit.gt, 0), (limit.le, 1), (limit.lt, 0)):
        if bound is not None:
            values.append(bound + step)
    return values


def _blames_only(lines: list[str], key: str, cfg: DictConfig, bad) -> bool:
    """Each line names ``key``, or a key whose value is interpolated from it (``task_name:
    ${model.name}``): written as an interpolation, it resolves to the same wrong value."""
    written = OmegaConf.to_container(cfg, resolve=False)
    for line in lines:
        named = line.split("=", 1)[0].split(":", 1)[0]
        if named == key:
            continue
        raw = written
        for part in named.split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        value = OmegaConf.select(cfg, named, throw_on_resolution_failure=False)
        if isinstance(value, ListConfig | DictConfig):
            value = OmegaConf.to_container(value)
        if not (isinstance(raw, str) and "${" in raw and value == bad):
            return False
    return True


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_shipped_key_is_typed_and_fits(configs, name):
    cfg = configs[name]
    listed = list(entries(cfg))
    assert [problem for *_, problem in listed if problem] == []
    assert list(violations(cfg)) == []
    assert len(listed) > 5


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_key_refuses_wrong_types_and_ranges_in_one_line_naming_it(configs, name):
    """The property of the issue, for every key of every command: values of the wrong type
    (judged from the shipped value's kind) and just outside the key's range are refused with
    lines that name the key; a value inside the range is accepted."""
    cfg = configs[name]
    untyped, checked = [], 0
    # a key train's config has (data, model, trainer...) is the same key here: checked there
    seen = set() if name == "train" else {e[0] for e in entries(configs["train"])}
    for key, value, annotation, _ in list(entries(cfg)):
        if key in seen:
            continue
        kind = _default_kind(value)
        wrong = [v for v in _WRONG[kind] if kind is not None or not fits(v, annotation)]
        outside = [v for limit in _ranges(annotation) for v in _outside(limit)]
        if not wrong:
            untyped.append(key)
        for bad in wrong + outside:
            broken = cfg.copy()
            OmegaConf.update(broken, key, bad, merge=False)
            lines = list(violations(broken))
            assert lines, f"{key}={bad!r} accepted ({describe(annotation)})"
            (line,) = [line for line in lines if line.startswith(f"{key}=")]
            assert "expected" in line and "\n" not in line
            assert _blames_only(lines, key, broken, bad), (key, bad, lines)
            checked += 1
    assert untyped == [], f"keys that accept anything: {untyped}"
    assert checked >= 4  # export: format, verify.max_images, verify.blank_image, ...


def test_describes_what_is_allowed():
    cfg = _compose("train")
    OmegaConf.update(cfg, "budget_minutes", float("inf"))
    OmegaConf.update(cfg, "data.num_workers", "many")
    OmegaConf.update(cfg, "model.optimizer.lr", -1)
    assert list(violations(cfg)) == [
        "budget_minutes=inf: expected a number > 0 or null",
        "data.num_workers=many: expected an integer >= 0 or auto",
        "model.optimizer.lr=-1: expected a number > 0",
    ]


@pytest.mark.parametrize(
    "override,line",
    [
        (
            "+budget_minute=3",
            "budget_minute: not a key lightdet reads; did you mean budget_minutes?",
        ),
        (
            "+model.net.focal_gama=1",
            "model.net.focal_gama: not an argument of build_retinanet; "
            "did you mean model.net.focal_gamma?",
        ),
        ("trainer.precision=17", "trainer.precision=17: expected one of auto, 64-true, 32-true, "),
        ("model.net.head_norm=batch", "model.net.head_norm=batch: expected group or null"),
        ("data.policy.unknown_classes=drop", "data.policy.unknown_classes=drop: expected one of"),
        # found by the round of hostile inputs: each crashed after the run folder existed
        (
            "model.net.anchor_sizes=[]",
            "model.net.anchor_sizes=[]: expected a list of integers of at least 1 item",
        ),
        (
            "model.net.aspect_ratios=[0]",
            "model.net.aspect_ratios=[0]: expected a list of numbers of at least 1 item each > 0",
        ),
        (
            "seed=99999999999999999999",
            "seed=99999999999999999999: expected an integer >= 0 and <= 4294967295",
        ),
        ("data.source.num_train=0", "data.source.num_train=0: expected an integer >= 1"),
        ("+data.source.bogus=1", "data.source.bogus: not an argument of ShapesSource"),
        (
            "callbacks.throughput.window_size=1",
            "callbacks.throughput.window_size=1: expected an integer >= 2",
        ),
        (
            "callbacks.model_checkpoint.save_top_k=-2",
            "callbacks.model_checkpoint.save_top_k=-2: expected an integer >= -1",
        ),
    ],
)
def test_composition_refuses_in_one_line(override, line):
    with pytest.raises(ConfigValueError) as caught:
        _compose("train", override)
    assert str(caught.value).startswith(f"config: {line}")
    assert len(str(caught.value).splitlines()) == 1


def test_a_required_value_left_out_is_named():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        with pytest.raises(ConfigValueError, match=r"^config: input: required; give input="):
            compose(config_name="predict", overrides=["ckpt_path=x.ckpt"])


# the examples and one or more per command: (command, overrides, keys refused)
REFUSED = {
    "train": (
        ["budget_minutes=inf", "seed=abc", "data.batch_size=0", "nonfinite_loss.action=bogus"]
        + ["optimization.nominal_batch_size=abc", "model.net.focal_gamma=-1"],
        6,
    ),
    "evaluate": (["split=train", "trainer.max_epochs=abc"], 2),
    "predict": (["score_thresh=2", "batch_size=0"], 2),
    "export": (["format=tflite", "verify.max_images=0"], 2),
    "hpo": (["hpo.n_trials=0", "backend=cloud"], 2),
    "study": (["study.budget.minutes=-1", "study.latency.repeats=abc"], 2),
    "show_augment": (["num_images=0", "cell_size=abc"], 2),
}


def _refusals(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("config: ")]


def _keys(overrides: list[str]) -> set[str]:
    return {override.split("=", 1)[0] for override in overrides}


def test_each_command_refuses_before_anything_is_created(tmp_path, monkeypatch, capsys):
    """Every command's entry point as the CLI runs it (in this process: Hydra's main, the
    guard, the preflight): exit 1, a line per wrong key naming it, no traceback, nothing made
    (the root that holds logs/ and data/ stays empty)."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    from lightdet.guard.hydra_guard import use_preflight

    monkeypatch.setenv("LIGHTDET_ROOT", str(tmp_path))
    for name, (overrides, count) in REFUSED.items():
        entry = importlib.import_module(f"lightdet.{name}")
        monkeypatch.setattr(sys, "argv", [f"lightdet.{name}", *COMMANDS[name], *overrides])
        with pytest.raises(SystemExit) as exited:
            entry.main()
        GlobalHydra.instance().clear()
        use_preflight(None)
        err = capsys.readouterr().err
        lines = _refusals(err)
        assert exited.value.code == 1 and len(lines) == count, (name, err)
        assert {line.removeprefix("config: ").split("=", 1)[0] for line in lines} == _keys(
            overrides
        )
        assert "Traceback" not in err
        assert list(tmp_path.iterdir()) == [], (name, list(tmp_path.rglob("*")))


@pytest.mark.slow
def test_a_refused_command_exits_1_in_its_own_process(tmp_path):
    """The same as a user's shell sees it: a real ``python -m lightdet.train`` process."""
    overrides, count = REFUSED["train"]
    env = clean_env(
        LIGHTDET_ROOT=str(tmp_path),
        CLEARML_CACHE_DIR=str(tmp_path),
        LIGHTDET_CACHE_DIR=str(tmp_path),
        CLEARML_OFFLINE_MODE="1",
    )
    command = [sys.executable, "-m", "lightdet.train", *overrides]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and len(_refusals(proc.stderr)) == count, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_floats_must_be_finite_unless_said():
    assert not fits(float("nan"), float) and not fits(math.inf, float)
    assert fits(math.inf, typing.Annotated[float, Range(gt=0, finite=False)])
    assert fits(3, float) and not fits(True, float) and not fits(True, int)
