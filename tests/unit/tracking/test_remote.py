"""The check that a run an agent started holds its task's ``Hydra/*`` values."""

import pytest
from hydra import compose, initialize_config_dir

from lightdet.cli import CONFIG_DIR
from lightdet.overrides import hydra_overrides
from lightdet.tracking.remote import UnappliedParameters, check_applied, unapplied


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="train", overrides=[f"paths.root_dir={root}", f"paths.output_dir={root}"]
        )


def _task_parameters(cfg) -> dict[str, str]:
    """What a task recorded by ``init_task`` holds: every leaf under Hydra/, other sections."""
    return {
        **{f"Hydra/{k}": v for k, v in hydra_overrides(cfg).items()},
        "Args/overrides": "['trainer.max_epochs=1']",  # ClearML's argparse binding: not ours
    }


def test_a_task_whose_values_all_arrived_passes(cfg):
    assert unapplied(_task_parameters(cfg), cfg, {"model": "retinanet"}) == {}


def test_an_edited_value_that_did_not_arrive_is_named_with_both_values(cfg):
    params = _task_parameters(cfg)
    params["Hydra/model.net.focal_gamma"] = "3.5"  # the edit; cfg holds the default 2.0
    params["Hydra/data.batch_size"] = "8.0"  # spelt otherwise, the same value: not reported
    assert unapplied(params, cfg, {}) == {"model.net.focal_gamma": ("3.5", "2.0")}


def test_keys_the_config_lacks_and_group_choices(cfg):
    params = {
        "Hydra/model.net.focal_gama": "2.5",  # a typo: absent from the composed config
        "Hydra/model": "ssd",  # a config group: compared with the choice made
        "Hydra/+trainer.max_steps": "3",  # an added key, absent as composed
        "Hydra/~callbacks.ema": "",  # a deletion: nothing to compare
        "Hydra/_allow_omegaconf_edit_": "False",  # the binding's switch, not a key
    }
    assert unapplied(params, cfg, {"model": "retinanet"}) == {
        "model.net.focal_gama": ("2.5", "(absent)"),
        "model": ("ssd", "retinanet"),
        "trainer.max_steps": ("3", "(absent)"),
    }


class _Task:
    id = "4f1c"

    def __init__(self, parameters):
        self.parameters = parameters

    def get_parameters(self, backwards_compatibility=True):
        assert backwards_compatibility is False  # sections kept: Hydra/...
        return self.parameters


def test_check_applied_stops_with_one_line_naming_three_and_counting_the_rest(cfg):
    edits = {
        "model.net.focal_gamma": "3.5",
        "data.batch_size": "2",
        "trainer.max_epochs": "9",
        "model.optimizer.lr": "0.5",
        "seed": "7",
    }
    params = {f"Hydra/{k}": v for k, v in edits.items()}  # named in the task's order
    with pytest.raises(UnappliedParameters) as err:
        check_applied(_Task(params), cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "ClearML: task 4f1c was started by an agent, but 5 of its parameters did not reach the "
        "composed config: Hydra/model.net.focal_gamma=3.5 (composed: 2.0), "
        "Hydra/data.batch_size=2 (composed: 8), Hydra/trainer.max_epochs=9 (composed: "
    )
    assert " and 2 more (model.optimizer.lr, seed)." in message


def test_check_applied_leaves_a_task_edited_through_its_omegaconf_section_alone(cfg):
    params = {"Hydra/_allow_omegaconf_edit_": "True", "Hydra/model.net.focal_gamma": "3.5"}
    check_applied(_Task(params), cfg)  # the binding composes from the OmegaConf section then
