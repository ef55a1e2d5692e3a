import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lightdet.cli import CONFIG_DIR
from lightdet.overrides import hydra_overrides, override_value
from lightdet.tracking.server import offline_requested


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


def test_server_probe_is_bounded_and_sees_a_live_server():
    import http.server
    import socket
    import threading
    import time

    from lightdet.tracking.server import server_reachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    start = time.monotonic()
    assert server_reachable(f"http://127.0.0.1:{closed}", tries=2, timeout=1.0, wait=0.5) is False
    assert time.monotonic() - start < 5

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:  # any HTTP answer (here a 501) means the server is there
        assert server_reachable(f"http://127.0.0.1:{server.server_port}", tries=1, timeout=5.0)
    finally:
        server.server_close()


def test_register_model_offline_records_weights_and_label_enumeration(tmp_path):
    import json
    from pathlib import Path

    from clearml import Task

    from lightdet.tracking.clearml import register_model

    Task.set_offline(True)
    task = Task.init(
        project_name="lightdet-tests",
        task_name="register",
        reuse_last_task_id=False,
        auto_connect_frameworks=False,
        auto_resource_monitoring=False,
    )
    try:
        ckpt = tmp_path / "best.ckpt"
        ckpt.write_bytes(b"weights")
        metrics = {"val/map": 0.5}
        register_model(
            task,
            str(ckpt),
            name="run best",
            class_names=["a", "b"],
            config={"seed": 1},
            metrics=metrics,
            iteration=7,
        )
        folder = Path(task.get_offline_mode_folder())
    finally:
        task.close()
    (entry,) = json.loads((folder / "task.json").read_text())["offline_output_models"]
    assert entry["init"]["name"] == "run best"
    assert entry["init"]["label_enumeration"] == {"background": 0, "a": 1, "b": 2}
    assert entry["init"]["config_dict"]["metrics"] == metrics
    copied = Path(entry["weights"]["weights_filename"])
    assert copied.parent == folder / "models" and copied.read_bytes() == b"weights"
    assert entry["weights"]["iteration"] == 7
