"""The Makefile's variables as a command's arguments: data, never shell text.

``make predict CKPT=... INPUT=...`` exports its variables to the environment; the recipe runs
``python -m lightdet.makeargs predict``, which reads them here, writes each value in Hydra's
override grammar (a path with spaces, quotes, ``;``, backticks or ``$(...)`` stays one value),
splits ``ARGS`` as a shell would split words (``shlex``, which runs nothing) and replaces itself
with ``python -m lightdet.<command> <arguments>``. ``--print`` prints the arguments instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping

_NAME = re.compile(r"[A-Za-z0-9_][\w.\-]*")  # a config group option, a study cell
_BARE = re.compile(r"[A-Za-z_][\w\-./]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_KEYWORDS = {"true", "false", "null", "none", "nan", "inf", "-inf", "+inf"}


class MakeArgumentError(ValueError):
    """A Make variable that cannot be passed on as it is."""


def literal(name: str, text: str) -> str:
    """``text`` as a Hydra override value that reads back as exactly ``text``."""
    if "${" in text or "\x00" in text:
        raise MakeArgumentError(f"{name}={text!r}: '${{' and NUL are not accepted in a value")
    if _BARE.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    quoted = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)  # \' and \\ before '
    quoted = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted)  # a trailing backslash
    return f"'{quoted}'"


def _name(variable: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise MakeArgumentError(
            f"{variable}={value!r}: expected a config name (letters, digits, '_', '-', '.')"
        )
    return value


def _number(variable: str, value: str) -> str:
    if not _NUMBER.fullmatch(value):
        raise MakeArgumentError(f"{variable}={value!r}: expected a number")
    return value


class _Vars:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def __getitem__(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def groups(self, *names: str) -> list[str]:
        keys = {
            "MODEL": "model",
            "DATA": "data",
            "AUG": "augmentation",
            "TRAINER": "trainer",
            "EXPERIMENT": "experiment",
        }
        return [f"{keys[n]}={_name(n, self[n])}" for n in names if self[n]]

    def value(self, variable: str, key: str) -> list[str]:
        return [f"{key}={literal(variable, self[variable])}"] if self[variable] else []

    def need(self, usage: str, *names: str) -> None:
        missing = [n for n in names if not self[n]]
        if missing:
            raise MakeArgumentError(f"usage: {usage} ({', '.join(missing)} not given)")

    def args(self) -> list[str]:
        try:
            return shlex.split(self.env.get("ARGS", ""))
        except ValueError as err:
            raise MakeArgumentError(f"ARGS={self['ARGS']!r}: {err}") from None


_ALL = ("MODEL", "DATA", "AUG", "TRAINER", "EXPERIMENT")


def _train(v: _Vars) -> list[str]:
    budget = [f"budget_minutes={_number('BUDGET', v['BUDGET'])}"] if v["BUDGET"] else []
    return [*v.groups(*_ALL), *v.value("RESUME", "ckpt_path"), *budget]


def _study_budget(v: _Vars) -> list[str]:
    out = v.groups("DATA", "AUG", "TRAINER")
    if v["BUDGET"]:
        out.append(f"study.budget.minutes={_number('BUDGET', v['BUDGET'])}")
        out += [] if v["EPOCHS"] else ["study.budget.epochs=null"]
    if v["EPOCHS"]:
        out.append(f"study.budget.epochs={_number('EPOCHS', v['EPOCHS'])}")
    if v["SEEDS"]:
        out.append(f"study.seeds={_number('SEEDS', v['SEEDS'])}")
    if v["RUNTIMES"]:
        runtimes = ",".join(_name("RUNTIMES", r) for r in v["RUNTIMES"].split())
        out.append(f"study.latency.runtimes=[{runtimes}]")
    return out


def _compare(v: _Vars) -> list[str]:
    out = ["-m", "study=compare", *_study_budget(v)]
    if not v["CKPTS"]:
        models = v["MODELS"].split() or ["retinanet"]
        return [*out, "model=" + ",".join(_name("MODELS", m) for m in models)]
    cells, paths = [], []
    for item in shlex.split(v["CKPTS"]):
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise MakeArgumentError(f"CKPTS: {item!r}: expected name=<checkpoint>")
        cells.append(_name("CKPTS", name))
        paths.append(literal("CKPTS", item))
    return [*out, "cell=" + ",".join(cells), f"study.checkpoints=[{','.join(paths)}]"]


def _evaluate(v: _Vars) -> list[str]:
    v.need("make eval CKPT=<checkpoint> [SPLIT=val|test] [DATA=...]", "CKPT")
    split = [f"split={_name('SPLIT', v['SPLIT'])}"] if v["SPLIT"] else []
    return [*v.value("CKPT", "ckpt_path"), *split, *v.groups("DATA")]


def _predict(v: _Vars) -> list[str]:
    v.need(
        "make predict CKPT=<checkpoint> INPUT=<image | folder | 'glob'> [OUT=<folder>]",
        "CKPT",
        "INPUT",
    )
    return [
        *v.value("CKPT", "ckpt_path"),
        *v.value("INPUT", "input"),
        *v.value("OUT", "output_dir"),
    ]


def _export(v: _Vars) -> list[str]:
    v.need(
        "make export CKPT=<checkpoint> [FORMAT=onnx|torchscript] [PRECISION=fp32|int8] [DATA=...]",
        "CKPT",
    )
    form = [f"format={_name('FORMAT', v['FORMAT'])}"] if v["FORMAT"] else []
    form += [f"precision={_name('PRECISION', v['PRECISION'])}"] if v["PRECISION"] else []
    return [*v.value("CKPT", "ckpt_path"), *form, *v.groups("DATA")]


# make target -> (module, arguments before ARGS)
TARGETS: dict[str, tuple[str, Callable[[_Vars], list[str]]]] = {
    "train": ("train", _train),
    "anchors": ("anchors", lambda v: v.groups(*_ALL)),
    "show-augment": ("show_augment", lambda v: v.groups("DATA", "AUG")),
    "eval": ("evaluate", _evaluate),
    "predict": ("predict", _predict),
    "export": ("export", _export),
    "compare": ("study", _compare),
    "study": (
        "study",
        lambda v: ["-m", f"study={_name('STUDY', v['STUDY'] or 'focal')}", *_study_budget(v)],
    ),
    "hpo": ("hpo", lambda v: [f"hpo={_name('HPO', v['HPO'])}"] if v["HPO"] else []),
    "remote": (
        "train",
        lambda v: [*v.groups(*_ALL), *v.value("QUEUE", "logger.clearml.remote_queue")],
    ),
    "config": ("show_config", lambda v: [*(["--yaml"] if v["YAML"] else []), *v.groups(*_ALL)]),
}


def command(target: str, env: Mapping[str, str]) -> list[str]:
    """``[module, *arguments]`` for ``make <target>`` with the variables in ``env``."""
    module, build = TARGETS[target]
    variables = _Vars(env)
    return [f"lightdet.{module}", *build(variables), *variables.args()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--print", action="store_true", help="print the arguments as JSON")
    args = parser.parse_args(argv)
    try:
        module, *arguments = command(args.target, os.environ)
    except MakeArgumentError as err:
        print(f"make {args.target}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.print:
        print(json.dumps([module, *arguments]))
        return
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *arguments])


if __name__ == "__main__":
    main()
