"""What a study job trains: its overrides, budget, folder key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lightdet.studies.spec import (
    StudyConfigError,
    budget_overrides,
    cell_overrides,
    checkpoint_of,
    config_key,
    label_of,
    training_overrides,
)
from tests.conftest import compose_train


def test_the_study_keys_are_not_training_overrides():
    line = [
        "model=ssd",
        "cell=ce",
        "study=focal",
        "study.budget.minutes=3",
        "+study.x=1",
        "data.batch_size=2",
        "++trainer.max_time='00:00:01:00'",
    ]
    assert training_overrides(line) == [
        "model=ssd",
        "data.batch_size=2",
        "++trainer.max_time='00:00:01:00'",
    ]


def test_cells_and_checkpoints_by_name():
    study = OmegaConf.create(
        {
            "name": "focal",
            "cells": {"ce": ["model.net.focal_gamma=0"]},
            "checkpoints": ["mine=/a/b=c.ckpt"],
        }
    )
    assert cell_overrides(study, "ce") == ["model.net.focal_gamma=0"]
    assert cell_overrides(study, None) == []
    with pytest.raises(
        StudyConfigError, match=r"cell=g2: not a cell of study 'focal' \(cells: ce\)"
    ):
        cell_overrides(study, "g2")
    assert checkpoint_of(study, "mine") == "/a/b=c.ckpt"  # split at the first '='
    assert checkpoint_of(study, "ce") is None
    bad = OmegaConf.create({"name": "x", "checkpoints": ["/only/a/path.ckpt"]})
    with pytest.raises(StudyConfigError, match="expected name=path"):
        checkpoint_of(bad, "x")


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"epochs": 3, "minutes": None}, ["trainer.max_epochs=3"]),
        (
            {"epochs": None, "minutes": 4},
            ["++trainer.max_time='00:00:04:00'", "trainer.max_epochs=-1"],
        ),
        (
            {"epochs": 2, "minutes": 0.25},
            ["trainer.max_epochs=2", "++trainer.max_time='00:00:00:15'"],
        ),
        (
            {"epochs": None, "minutes": 1570},
            ["++trainer.max_time='01:02:10:00'", "trainer.max_epochs=-1"],
        ),
    ],
)
def test_budget_as_trainer_overrides(budget, expected):
    assert budget_overrides(OmegaConf.create(budget)) == expected


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"epochs": None, "minutes": None}, "set epochs, minutes or both"),
        ({"epochs": 0, "minutes": None}, "epochs: expected at least 1"),
        ({"epochs": None, "minutes": 0}, "minutes: expected more than 0"),
    ],
)
def test_budget_errors_name_the_key(budget, message):
    with pytest.raises(StudyConfigError, match=message):
        budget_overrides(OmegaConf.create(budget))


def test_the_key_ignores_where_a_run_is_written_not_what_it_trains(tmp_path):
    a = compose_train(tmp_path, "task_name=one")
    b = compose_train(tmp_path, "task_name=two", f"paths.output_dir={tmp_path}/b")
    assert config_key(a) == config_key(b)  # another run folder and name: the same training
    assert config_key(compose_train(tmp_path, "model.net.focal_gamma=1.0")) != config_key(a)
    other_data = compose_train(tmp_path, f"data.source.root={tmp_path}/elsewhere")
    assert config_key(other_data) != config_key(a)
    assert label_of(None, a) == "retinanet" and label_of("g 2/a", a) == "g_2_a"


@pytest.mark.parametrize("name", ["compare", "focal", "anchors", "zoom"])
def test_every_shipped_study_composes_and_each_cell_is_a_valid_training_config(tmp_path, name):
    """Each ``conf/study/*.yaml``: its cells are what its sweep runs, and each cell's overrides
    compose into a training config that sets what the cell says."""
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="study", overrides=[f"study={name}"], return_hydra_config=True)
        study = cfg.study
        swept = OmegaConf.select(cfg, "hydra.sweeper.params.cell")
        assert study.name == name and (swept is None) == (not study.cells)
        if swept is not None:
            assert swept.split(",") == list(study.cells)
        assert set(study.paper or {}) <= set(study.cells)
        for a, b in study.verdicts or []:
            assert a in study.cells and b in study.cells
        for cell in study.cells:
            overrides = [*study.base, *cell_overrides(study, cell), *budget_overrides(study.budget)]
            train = compose(
                config_name="train", overrides=[f"paths.root_dir={tmp_path}", *overrides]
            )
            for line in cell_overrides(study, cell):
                key, value = line.split("=", 1)
                if "." in key:  # a value: set as written
                    assert str(OmegaConf.select(train, key)).replace(" ", "") == value
            if study.heatmap:
                assert OmegaConf.select(train, study.heatmap.x) is not None
