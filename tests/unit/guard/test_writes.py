"""The one write policy: every key that names a place lightdet writes is declared and checked
at composition; round 2's findings each refused before anything is written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lightdet.cli import CONFIG_DIR
from lightdet.guard import UnsafeConfigError
from lightdet.guard.hydra_guard import check_composed
from lightdet.guard.writes import READS, WRITES, declared, hydra_keys, resolving, value_of
from tests.conftest import clean_env, compose_train, snapshot

_METRIC = re.compile(r"(train|val|test)/[\w.-]+")
_SUFFIX = re.compile(r"\.(ckpt|pt|pth|db|yaml|yml|json|csv|png|jpg|txt|onnx|log|xml)$")


def _user_folder(root: Path) -> dict:
    root.mkdir(parents=True)
    (root / "results.csv").write_text("my results\n")
    (root / "config.yaml").write_text("mine: true\n")
    (root / "train.log").write_text("my log\n")
    return snapshot(root)


@pytest.mark.parametrize(
    "override",
    [
        "hydra.output_subdir=../../victim",  # Hydra's config.yaml/hydra.yaml/overrides.yaml
        "hydra.job.name=../../victim/train",  # Hydra's <job.name>.log, appended to
        "callbacks.model_checkpoint.filename=../../victim/best",
        "callbacks.run_results.dirpath={victim}",
        "trainer.default_root_dir={victim}",
        "paths.output_dir={victim}",
        "logger.clearml.output_uri={victim}",  # ClearML copies each registered model there
        "logger.clearml.output_uri=file://{victim}",
    ],
)
def test_a_training_key_that_writes_outside_is_refused_at_composition(tmp_path, override):
    victim = tmp_path / "victim"
    before = _user_folder(victim)
    with pytest.raises(UnsafeConfigError, match=re.escape(override.split("=")[0])):
        compose_train(tmp_path, override.format(victim=victim))
    assert snapshot(victim) == before


def _multirun_cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="study",
            return_hydra_config=True,
            overrides=[f"paths.root_dir={tmp_path}", *overrides],
        )


@pytest.mark.parametrize(
    "override",
    [
        "hydra.sweep.dir={victim}",  # multirun.yaml and the job folders into a user's folder
        "hydra.sweep.subdir=../../victim",  # each job's folder
        "hydra.sweep.subdir=${{hydra.job.override_dirname}}",  # a name made of override values
        "hydra.sweep.subdir=${{hydra.job.num}}/../../victim",  # does not resolve at composition
        "study.dir={victim}",  # the study's table.md and results.csv
    ],
)
def test_a_multirun_key_that_writes_outside_is_refused(tmp_path, override):
    victim = tmp_path / "victim"
    before = _user_folder(victim)
    key = override.split("=")[0]
    with pytest.raises(UnsafeConfigError, match=re.escape(key)):
        cfg = _multirun_cfg(tmp_path, override.format(victim=victim))
        check_composed(cfg, run=False, multirun=True)
    assert snapshot(victim) == before


def test_the_study_command_refuses_a_users_sweep_folder_before_writing(tmp_path):
    """The real ``-m`` command line, as the issue ran it: nothing is written."""
    victim = tmp_path / "victim"
    before = _user_folder(victim)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightdet.study",
            "-m",
            "study=compare",
            "model=ssd",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={victim}",
        ],
        env=clean_env(CLEARML_OFFLINE_MODE="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "hydra.sweep.dir" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(victim) == before and not (victim / ".lightdet").exists()


def test_the_default_sweep_folder_is_claimed_for_lightdet(tmp_path):
    cfg = _multirun_cfg(tmp_path, "hydra.sweep.dir=" + str(tmp_path / "sweeps" / "a"))
    check_composed(cfg, run=False, multirun=True)
    assert (tmp_path / "sweeps" / "a" / ".lightdet").is_file()
    assert (tmp_path / "sweeps" / ".lightdet").is_file()  # a parent lightdet created


def test_only_declared_hydra_keys_may_be_overridden(tmp_path):
    with pytest.raises(UnsafeConfigError, match="Hydra's own settings cannot be overridden"):
        compose_train(tmp_path, "hydra.job_logging.handlers.file.filename=/tmp/x.log")
    assert set(hydra_keys()) >= {"hydra.run.dir", "hydra.output_subdir", "hydra.job.name"}


def _configs(tmp_path: Path):
    """Every entry point's config, with every model, data and study group."""
    given = [f"paths.root_dir={tmp_path}"]
    inputs = [f"ckpt_path={tmp_path}/x.ckpt"]
    yield "train", given
    for group, folder in (("model", "model"), ("data", "data"), ("experiment", "experiment")):
        for option in sorted(p.stem for p in (Path(CONFIG_DIR) / folder).glob("*.yaml")):
            yield "train", [*given, f"{group}={option}"]
    yield "evaluate", [*given, *inputs]
    yield "export", [*given, *inputs]
    yield "predict", [*given, *inputs, f"input={tmp_path}/images"]
    yield "show_augment", given
    for hpo in sorted(p.stem for p in (Path(CONFIG_DIR) / "hpo").glob("*.yaml")):
        yield "hpo", [*given, f"hpo={hpo}"]
    for study in sorted(p.stem for p in (Path(CONFIG_DIR) / "study").glob("*.yaml")):
        yield "study", [*given, f"study={study}"]


def _leaves(node, prefix: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _looks_like_path(value) -> bool:
    if not isinstance(value, str) or _METRIC.fullmatch(value) or "=" in value:
        return False  # a metric name (stage/name), an override
    return value.startswith(("/", "./", "../", "~")) or "/" in value or bool(_SUFFIX.search(value))


def test_every_path_in_every_entry_points_config_is_declared_written_or_read(tmp_path):
    """A new key that names a place cannot slip by: each value that looks like a path must be
    under a key the write policy declares as written, as read, or as a base folder."""
    undeclared, seen_written, seen_read = [], set(), set()
    for config_name, overrides in _configs(tmp_path):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        multirun = config_name == "study"
        with resolving(cfg, multirun) as (work, _):
            body = {k: value_of(work, k) for k in work if k != "hydra"}
            hydra = {k: value_of(work, k) for k in hydra_keys()}
        for key, value in [*_leaves(body), *hydra.items()]:
            kind = declared(key)
            if kind in WRITES.values():
                seen_written.add(key)
            elif kind == "read" and _looks_like_path(value):
                seen_read.add(key)
            elif kind is None and _looks_like_path(value):
                undeclared.append(f"{config_name}: {key}={value}")
    assert not undeclared, "\n".join(sorted(set(undeclared)))
    # the declarations are live: the shipped configs use the main write keys
    assert {
        "paths.output_dir",
        "callbacks.model_checkpoint.dirpath",
        "hpo.storage",
        "study.dir",
        "output",
        "hydra.output_subdir",
    } <= seen_written
    assert {"ckpt_path", "input", "data.source.root", "data.source.roots[0]"} <= seen_read
    assert set(seen_read) <= {k for k in seen_read if declared(k) == "read"} and READS


@pytest.mark.parametrize(
    "override,message",
    [
        # str.format makes '//0' of '{epoch:/>3}', and os.path.join then drops the folder: an
        # absolute path at the file system's root
        ("callbacks.model_checkpoint.filename='{epoch:/>3}etc{epoch:/^3}x'", "numeric spec only"),
        ("callbacks.model_checkpoint.filename='..'", "plain name"),
        # positional arguments hide a folder from the policy's named keys
        (
            "+callbacks.x={_target_:pytorch_lightning.callbacks.ModelCheckpoint,_args_:[{victim}]}",
            r"callbacks\.x\._args_: positional arguments are not accepted",
        ),
        # a registered writer placed under another key is checked where it is
        (
            "+model.net.extra={_target_:pytorch_lightning.callbacks.ModelCheckpoint,dirpath:{victim}}",
            r"model\.net\.extra\.dirpath=.*victim",
        ),
        (
            "+data.x={_target_:lightdet.lightning.results.RunResults,dirpath:{victim}}",
            r"data\.x\.dirpath=.*victim",
        ),
    ],
)
def test_my_round_two_variants_are_refused(tmp_path, override, message):
    """Variants found after the issue's list (this session's own attacker round)."""
    victim = tmp_path / "victim"
    before = _user_folder(victim)
    with pytest.raises(UnsafeConfigError, match=message):
        compose_train(tmp_path, override.replace("{victim}", f"'{victim}'"))
    assert snapshot(victim) == before


def test_a_checkpoint_name_with_numeric_format_fields_is_accepted(tmp_path):
    compose_train(tmp_path, "callbacks.model_checkpoint.filename='best-{epoch:03d}-{val/map:.3f}'")


@pytest.mark.parametrize(
    "uri", ["s3://bucket/models", "gs://b/m", "azure://acct/c", "https://files.example:8081"]
)
def test_an_object_store_or_file_server_is_the_operators_to_name(tmp_path, uri):
    cfg = compose_train(tmp_path, f"logger.clearml.output_uri={uri}")
    assert cfg.logger.clearml.output_uri == uri


def test_an_output_uri_of_another_scheme_is_refused(tmp_path):
    with pytest.raises(UnsafeConfigError, match="logger.clearml.output_uri='ftp://h/m': expected"):
        compose_train(tmp_path, "logger.clearml.output_uri=ftp://h/m")


def test_a_new_local_model_folder_is_accepted_and_marked_when_used(tmp_path):
    from lightdet import outputs
    from lightdet.tracking.server import model_destination

    folder = tmp_path / "models"
    cfg = compose_train(tmp_path, f"logger.clearml.output_uri=file://{folder}")
    assert not folder.exists()  # nothing made at composition
    assert model_destination(cfg.logger.clearml) == f"file://{folder}"
    assert outputs.is_ours(folder)  # from now on lightdet's, for later runs and make clean
    assert model_destination({"output_uri": None}) is True  # the server's file server
    assert model_destination({"output_uri": "s3://b/m", "upload_models": False}) is None
