"""Issue 11's payload classes, through every way a config reaches lightdet: the command line
(Hydra's composition), a cloned ClearML task's parameters (ClearML's Hydra binding appending
them as overrides), a dashboard-edited OmegaConf YAML (handed to ``train`` whole) and a
checkpoint's stored config. Each payload would write its marker file if it ran."""

import os
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lightdet.guard import UnsafeConfigError
from lightdet.runs.build import module_from_checkpoint
from lightdet.runs.train import run_training
from tests.conftest import CLASSES, compose_train, snapshot
from tests.unit.guard.payloads import (
    crafted_pickle,
    create_value,
    override,
    unpickle_node,
    write_node,
)


@pytest.fixture
def bait(tmp_path):
    """(source file, marker path, crafted pickle): the payloads' ingredients."""
    source = tmp_path / "source.txt"
    source.write_text("payload ran\n")
    marker = tmp_path / "PWNED"
    return source, marker, crafted_pickle(tmp_path, marker)


def _nodes(bait):
    source, marker, pickled = bait
    return {"copy": write_node(source, marker), "unpickle": unpickle_node(pickled)}


def test_each_payload_is_live_without_the_guard(bait):
    """The control: unguarded, each payload runs (so a refusal below is what saved us)."""
    _, marker, _ = bait
    for node in _nodes(bait).values():
        instantiate(node)
        assert marker.exists()
        marker.unlink()
    created = OmegaConf.create({"x": create_value(_nodes(bait)["copy"])})
    instantiate(OmegaConf.to_container(created, resolve=True)["x"])
    assert marker.exists()


# (override from the command line, the key the error must name)
def _command_line_cases(bait):
    nodes = _nodes(bait)
    return {
        "walk-callback": (override("+callbacks.evil", nodes["copy"]), "callbacks.evil._target_"),
        "walk-backbone": (
            override("model.net.backbone", nodes["unpickle"]),
            "model.net.backbone._target_",
        ),
        "create-callback": (f'+callbacks.evil="{create_value(nodes["copy"])}"', "callbacks.evil"),
        "create-model": (f'++model.net.head="{create_value(nodes["unpickle"])}"', "model.net.head"),
        "env_set": ("++hydra.job.env_set.LIGHTDET_ALLOWED_TARGETS=torch.", "hydra.job.env_set"),
        "hydra-callbacks": (
            override("++hydra.callbacks.evil", nodes["copy"]),
            "hydra.callbacks.evil",
        ),
        "hydra-package": ("+callbacks@hydra.callbacks=default", "hydra.callbacks"),
        "searchpath": ("hydra.searchpath=[file:///tmp]", "hydra.searchpath"),
        "launcher": (
            "hydra.launcher._target_=lightdet.data.shapes.shutil.copyfile",
            "hydra.launcher._target_",
        ),
        "launcher-shell": ("++hydra.launcher.setup=[touch /tmp/x]", "hydra.launcher.setup"),
    }


CASES = [
    "walk-callback",
    "walk-backbone",
    "create-callback",
    "create-model",
    "env_set",
    "hydra-callbacks",
    "hydra-package",
    "searchpath",
    "launcher",
    "launcher-shell",
]


@pytest.mark.parametrize("case", CASES)
def test_the_command_line_cannot_smuggle_a_payload(tmp_path, bait, case):
    line, key = _command_line_cases(bait)[case]
    with pytest.raises(UnsafeConfigError, match=key.replace(".", r"\.")):
        compose_train(tmp_path, line)
    assert not bait[1].exists()


@pytest.mark.parametrize("case", ["hydra-callbacks", "env_set", "walk-callback"])
def test_a_refused_run_stops_before_hydra_acts(tmp_path, bait, case, monkeypatch):
    """``python -m lightdet.train <override>`` in this process: Hydra instantiates
    ``hydra.callbacks`` and applies ``env_set`` before ``train()`` runs, so the refusal must
    come first; no run folder is created either."""
    import lightdet.train

    line, key = _command_line_cases(bait)[case]
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # the exception itself, not Hydra's print
    monkeypatch.setattr(sys, "argv", ["lightdet.train", f"paths.root_dir={tmp_path}", line])
    with pytest.raises(UnsafeConfigError, match=key.replace(".", r"\.")):
        lightdet.train.main()
    assert not bait[1].exists()
    assert "LIGHTDET_ALLOWED_TARGETS" not in os.environ
    assert not (tmp_path / "logs").exists()


class _ClonedTask:
    """What ClearML's Hydra binding reads from a task an agent runs: its parameters."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = {"Hydra/_allow_omegaconf_edit_": "False", **parameters}

    def connect(self, mutable, name=None):
        return mutable

    def get_parameters(self, backwards_compatibility=True):
        return dict(self.parameters)


def _cloned_cases(bait):
    source, marker, pickled = bait
    return {
        "walk-callback": (
            {
                "Hydra/callbacks.evil._target_": "lightdet.data.shapes.shutil.copyfile",
                "Hydra/callbacks.evil._args_": f"['{source}','{marker}']",
            },
            "callbacks.evil._target_",
        ),
        "create-model": (
            {"Hydra/model.net.head": f'"{create_value(unpickle_node(pickled))}"'},
            "model.net.head",
        ),
        "env_set": (
            {"Hydra/hydra.job.env_set.LIGHTDET_ALLOWED_TARGETS": "torch."},
            "hydra.job.env_set",
        ),
        "hydra-callbacks": (
            {"Hydra/hydra.callbacks.evil._target_": "lightdet.data.shapes.shutil.copyfile"},
            "hydra.callbacks.evil",
        ),
    }


@pytest.mark.parametrize("case", ["walk-callback", "create-model", "env_set", "hydra-callbacks"])
def test_a_cloned_tasks_edited_parameters_cannot_smuggle_a_payload(
    tmp_path, bait, case, monkeypatch
):
    """The real ClearML binding, as under a clearml-agent: it appends the task's ``Hydra/*``
    values to the overrides inside ``Hydra.run``, after any command-line check."""
    import clearml.binding.hydra_bind as binding
    from hydra._internal.hydra import Hydra

    import lightdet.train

    assert Hydra.run.__name__ == "_patched_hydra_run"  # ClearML's binding is in place
    parameters, key = _cloned_cases(bait)[case]
    monkeypatch.setattr(binding, "running_remotely", lambda: True)
    monkeypatch.setattr(binding.PatchHydra, "_current_task", _ClonedTask(parameters))
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", ["lightdet.train", f"paths.root_dir={tmp_path}"])
    with pytest.raises(UnsafeConfigError, match=key.replace(".", r"\.")):
        lightdet.train.main()
    assert not bait[1].exists()
    assert "LIGHTDET_ALLOWED_TARGETS" not in os.environ


@pytest.mark.parametrize(
    "case", ["walk-callback", "walk-backbone", "create-callback", "create-model"]
)
def test_a_dashboard_edited_config_cannot_smuggle_a_payload(tmp_path, bait, case):
    """With ``_allow_omegaconf_edit_``, ClearML hands ``train`` the edited YAML whole,
    never composed: ``train`` checks it (resolved) before creating anything."""
    nodes = _nodes(bait)
    edit, key = {
        "walk-callback": ({"callbacks": {"evil": nodes["copy"]}}, "callbacks.evil._target_"),
        "walk-backbone": (
            {"model": {"net": {"backbone": nodes["unpickle"]}}},
            "model.net.backbone._target_",
        ),
        "create-callback": ({"callbacks": {"evil": create_value(nodes["copy"])}}, "callbacks.evil"),
        "create-model": (
            {"model": {"net": {"head": create_value(nodes["unpickle"])}}},
            "model.net.head",
        ),
    }[case]
    dashboard = OmegaConf.create(OmegaConf.to_yaml(compose_train(tmp_path)))  # as ClearML loads it
    cfg = OmegaConf.merge(dashboard, edit)
    with pytest.raises(UnsafeConfigError, match=key.replace(".", r"\.")):
        run_training(cfg)
    assert not bait[1].exists()
    assert not (tmp_path / "run").exists()  # refused before anything was created


@pytest.mark.parametrize("where", ["backbone-walk", "head-create", "callback-walk"])
def test_a_checkpoints_stored_config_cannot_smuggle_a_payload(tmp_path, bait, where):
    """``make evaluate`` rebuilds the detector from the checkpoint's config (loaded
    ``weights_only``, so the config is plain strings that pass the unpickler)."""
    nodes = _nodes(bait)
    net = {"_target_": "lightdet.models.retinanet.build_retinanet", "backbone": "resnet18"}
    config = {"model": {"net": net}}
    if where == "backbone-walk":
        net["backbone"], key = nodes["unpickle"], "model.net.backbone._target_"
    elif where == "head-create":
        net["head"], key = create_value(nodes["unpickle"]), "model.net.head"
    else:
        config["callbacks"], key = {"evil": nodes["copy"]}, "callbacks.evil._target_"
    path = tmp_path / "crafted.ckpt"
    hp = {"class_names": list(CLASSES), "config": config}
    torch.save({"state_dict": {"net.w": torch.zeros(1)}, "hyper_parameters": hp}, path)
    with pytest.raises(UnsafeConfigError, match=rf"crafted.ckpt: .*{key.replace('.', '[.]')}"):
        module_from_checkpoint(str(path), list(CLASSES))
    assert not bait[1].exists()


def test_the_project_configs_still_compose(tmp_path):
    """The allowed hydra overrides: what Lightning's DDP launcher passes its children."""
    run_dir = tmp_path / "shared-run"
    cfg = compose_train(
        tmp_path,
        f'hydra.run.dir="{run_dir}"',
        "hydra.job.name=train_ddp_1",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
    )
    assert cfg.model.net._target_ == "lightdet.models.retinanet.build_retinanet"
    assert isinstance(UnsafeConfigError("x"), HydraException)  # printed compactly by Hydra
    assert Path(cfg.paths.output_dir) == tmp_path / "run"


def test_a_run_folder_at_user_files_is_refused_before_hydra_writes_into_it(tmp_path, monkeypatch):
    import lightdet.train

    user = tmp_path / "project"
    (user / ".hydra").mkdir(parents=True)
    (user / ".hydra" / "config.yaml").write_text("mine: true\n")
    (user / "train.log").write_text("my log\n")
    before = snapshot(user)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(
        sys, "argv", ["lightdet.train", f"paths.root_dir={tmp_path}", f"hydra.run.dir={user}"]
    )
    with pytest.raises(UnsafeConfigError, match=r"hydra\.run\.dir=.*project: the folder holds"):
        lightdet.train.main()
    assert snapshot(user) == before


def _entry_config(name, tmp_path):
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR

    overrides = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run"]
    overrides += ["ckpt_path=x.ckpt"] if name == "evaluate" else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    return OmegaConf.create(OmegaConf.to_yaml(cfg))  # as a dashboard-edited YAML arrives


@pytest.mark.parametrize("name", ["evaluate", "show_augment", "hpo"])
def test_every_entry_point_checks_the_config_it_is_handed(tmp_path, bait, name):
    from lightdet.runs.evaluate import run_evaluation
    from lightdet.runs.hpo import run_search
    from lightdet.runs.show_augment import show_augment

    entry = {"evaluate": run_evaluation, "show_augment": show_augment, "hpo": run_search}[name]
    cfg = OmegaConf.merge(_entry_config(name, tmp_path), {"extra": _nodes(bait)["copy"]})
    with pytest.raises(UnsafeConfigError, match=r"extra\._target_"):
        entry(cfg)
    assert not bait[1].exists()
