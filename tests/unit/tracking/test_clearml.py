import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lightdet.tracking.clearml import hydra_overrides, offline_requested, override_value
from lightdet.train import CONFIG_DIR


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -3, 0.25, 1e-05, -1.0, "resnet18", "val/map", "best-epoch{epoch:03d}"]
    + ["true", "null", "1.5", "it's", "a b", "", [16, 32, 64], [0.5, 1.0], ["a", "b c"], [], {}]
    + [{"k": 1}],
)
def test_override_values_parse_back_to_the_same_value(value):
    parsed = OverridesParser.create().parse_overrides([f"key={override_value(value)}"])[0]
    assert parsed.value() == value


def test_every_leaf_is_an_override_that_recomposes_the_config(tmp_path):
    """What an agent does with a cloned task: re-apply each Hydra/ entry as `++key=value`."""
    base = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=base)
        flat = hydra_overrides(cfg)
        assert flat["model.net.focal_alpha"] == "0.25" and flat["model.net.backbone"] == "resnet18"
        assert not any(k.startswith("paths.") for k in flat)  # machine-specific, left to the agent
        flat["model.net.focal_alpha"] = "0.5"  # the edit made in the dashboard
        again = compose(
            config_name="train", overrides=base + [f"++{k}={v}" for k, v in flat.items()]
        )
    expected = OmegaConf.to_container(cfg)
    expected["model"]["net"]["focal_alpha"] = 0.5
    assert OmegaConf.to_container(again) == expected


def test_offline_when_asked_or_when_no_server_is_configured(monkeypatch):
    assert offline_requested(True) is True and offline_requested(False) is False
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    assert offline_requested(None) is True
    monkeypatch.delenv("CLEARML_OFFLINE_MODE")
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    assert offline_requested(None) is False  # credentials present: try the server
