"""Make variables reach the commands as data: a value with spaces, quotes, backticks, ``$()``
or ``;`` arrives as one intact value and runs nothing (round 2: backticks in INPUT ran, and
CKPT, OUT, QUEUE and ARGS were unquoted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from lightdet.makeargs import MakeArgumentError, command, literal

REPO = Path(__file__).resolve().parents[2]


def _fake_venv(tmp_path: Path) -> Path:
    """A VENV for the Makefile whose python is this one with ``--print`` appended, so
    ``lightdet.makeargs`` prints the command it would run instead of running it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@" --print\n')
    python.chmod(0o755)
    (venv / ".installed").touch()  # newer than setup.cfg: install is up to date
    return venv


def _make(tmp_path: Path, target: str, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            target,
            f"VENV={_fake_venv(tmp_path)}",
            *(f"{k}={v}" for k, v in variables.items()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _values(arguments: list[str]) -> dict[str, object]:
    parsed = OverridesParser.create().parse_overrides([a for a in arguments if "=" in a])
    return {o.key_or_group: o.value() for o in parsed}


def test_hostile_make_variables_arrive_as_one_value_each_and_run_nothing(tmp_path):
    marks = {name: tmp_path / name for name in "XYZWQM"}
    ckpt = f"/tmp/a b/it's;touch {marks['X']}.ckpt $(shell touch {marks['M']})"  # Make's $()
    given = f"`touch {marks['Y']}`/$(touch {marks['Z']})/*.jpg"
    out = f"out dir; touch {marks['W']} \\"
    proc = _make(
        tmp_path,
        "predict",
        CKPT=ckpt,
        INPUT=given,
        OUT=out,
        ARGS=f"score_thresh=0.5 'draw=false' \"device='$(touch {marks['Q']})'\"",
    )
    assert proc.returncode == 0, proc.stderr
    module, *arguments = json.loads(proc.stdout.strip().splitlines()[-1])
    assert module == "lightdet.predict"
    values = _values(arguments)
    assert values["ckpt_path"] == ckpt and values["input"] == given and values["output_dir"] == out
    assert values["score_thresh"] == 0.5 and values["draw"] is False
    assert values["device"] == f"$(touch {marks['Q']})"
    assert not any(m.exists() for m in marks.values())


@pytest.mark.parametrize(
    "target,variables,expected",
    [
        (
            "train",
            {"MODEL": "ssd", "RESUME": "auto", "BUDGET": "12"},
            ["lightdet.train", "model=ssd", "ckpt_path=auto", "budget_minutes=12"],
        ),
        (
            "remote",
            {"QUEUE": "gpu queue;reboot"},
            ["lightdet.train", "logger.clearml.remote_queue='gpu queue;reboot'"],
        ),
        (
            "compare",
            {"MODELS": "ssd fcos", "BUDGET": "2"},
            [
                "lightdet.study",
                "-m",
                "study=compare",
                "study.budget.minutes=2",
                "study.budget.epochs=null",
                "model=ssd,fcos",
            ],
        ),
        (
            "compare",
            {"CKPTS": "mine='/a b/x.ckpt'"},
            [
                "lightdet.study",
                "-m",
                "study=compare",
                "cell=mine",
                "study.checkpoints=['mine=/a b/x.ckpt']",
            ],
        ),
        (
            "study",
            {"STUDY": "focal", "SEEDS": "3", "RUNTIMES": "pytorch onnx-int8"},
            [
                "lightdet.study",
                "-m",
                "study=focal",
                "study.seeds=3",
                "study.latency.runtimes=[pytorch,onnx-int8]",
            ],
        ),
        (
            "export",
            {"CKPT": "x.ckpt", "PRECISION": "int8"},
            ["lightdet.export", "ckpt_path=x.ckpt", "precision=int8"],
        ),
        (
            "eval",
            {"CKPT": "x.ckpt", "SPLIT": "test"},
            ["lightdet.evaluate", "ckpt_path=x.ckpt", "split=test"],
        ),
    ],
)
def test_each_target_builds_its_command(target, variables, expected):
    assert command(target, variables) == expected


@pytest.mark.parametrize(
    "variables,message",
    [
        ({"MODEL": "retinanet;touch x"}, "MODEL='retinanet;touch x': expected a config name"),
        ({"BUDGET": "$(reboot)"}, "BUDGET='$(reboot)': expected a number"),
        ({"RESUME": "${oc.env:HOME}"}, "RESUME='${oc.env:HOME}': '${' and NUL are not accepted"),
        ({"ARGS": "'unbalanced"}, 'ARGS="\'unbalanced": No closing quotation'),
    ],
)
def test_a_variable_that_cannot_be_passed_on_is_one_line_and_exit_2(tmp_path, variables, message):
    with pytest.raises(MakeArgumentError, match=__import__("re").escape(message)):
        command("train", variables)
    proc = _make(tmp_path, "train", **variables)
    assert proc.returncode == 2 and f"make train: {message}" in proc.stderr


def test_a_missing_variable_prints_the_usage(tmp_path):
    proc = _make(tmp_path, "predict", CKPT="x.ckpt")
    assert proc.returncode == 2 and "usage: make predict CKPT=<checkpoint> INPUT=" in proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "a b",
        "it's",
        "back\\slash",
        "end\\",
        "q\\'x",
        "true",
        "1.5",
        "[x]",
        "a,b",
        "=",
        "~/x",
    ],
)
def test_literal_reads_back_unchanged_through_hydras_grammar(text):
    (override,) = OverridesParser.create().parse_overrides([f"k={literal('K', text)}"])
    assert override.value() == text


@pytest.mark.parametrize(
    "variables,message",
    [
        ({"SEEDS": "3;reboot"}, "SEEDS='3;reboot': expected a number"),
        ({"RUNTIMES": "pytorch a]b"}, "RUNTIMES='a]b': expected a config name"),
    ],
)
def test_a_study_variable_that_cannot_be_passed_on_is_refused(variables, message):
    with pytest.raises(MakeArgumentError, match=__import__("re").escape(message)):
        command("study", {"STUDY": "focal", **variables})
