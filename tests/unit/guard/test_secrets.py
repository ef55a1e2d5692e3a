"""Credential values known to the process are scrubbed from configs and log lines."""

import logging

from omegaconf import OmegaConf

from lightdet.guard.secrets import REDACTED, ScrubFilter, scrub, scrub_config, secret_values

FAKE = "fake-secret-7f3a9c2e"


def test_secret_values_come_from_names_that_say_so_and_from_clearml_conf(tmp_path):
    conf = tmp_path / "clearml.conf"
    conf.write_text(
        'api { credentials { "access_key" = "AK-0123456789", secret_key: "SK-abcdefghij" } }'
    )
    env = {
        "CLEARML_API_SECRET_KEY": FAKE,
        "HF_TOKEN": "hf_0123456789",
        "MY_PASSWORD": "pw-0123456789",
        "CLEARML_API_HOST": "http://server:8008",
        "HOME": "/root/somewhere",
        "AWS_KEY": "short",
        "CLEARML_CONFIG_FILE": str(conf),
    }
    found = secret_values(env)
    assert set(found) == {FAKE, "hf_0123456789", "pw-0123456789", "AK-0123456789", "SK-abcdefghij"}


def test_a_config_holding_a_secret_is_scrubbed_in_place_and_the_keys_named(monkeypatch, caplog):
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", FAKE)
    cfg = OmegaConf.create(
        {"task_name": f"run-{FAKE}", "tags": [FAKE, "ok"], "n": 3, "ref": "${task_name}"}
    )
    with caplog.at_level(logging.WARNING):
        changed = scrub_config(cfg)
    assert changed == ["task_name", "tags[0]"]
    assert cfg.task_name == f"run-{REDACTED}" and cfg.ref == f"run-{REDACTED}"
    assert list(cfg.tags) == [REDACTED, "ok"] and cfg.n == 3
    assert "task_name, tags[0] held a credential" in caplog.text and FAKE not in caplog.text
    assert scrub({"a": [f"x{FAKE}"]}) == {"a": [f"x{REDACTED}"]}


def test_the_process_environment_is_read_as_it_is_now(monkeypatch):
    """secret_values() keeps what it found for one state of the environment (the log filter
    asks on every record); a variable set, changed or removed since is seen at the next call."""
    monkeypatch.delenv("MY_SERVICE_TOKEN", raising=False)
    assert FAKE not in secret_values()
    monkeypatch.setenv("MY_SERVICE_TOKEN", FAKE)
    assert FAKE in secret_values()
    monkeypatch.setenv("MY_SERVICE_TOKEN", "another-secret-9b1d")
    found = secret_values()
    assert "another-secret-9b1d" in found and FAKE not in found
    monkeypatch.delenv("MY_SERVICE_TOKEN")
    assert "another-secret-9b1d" not in secret_values()


def test_log_records_are_scrubbed_after_formatting(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", FAKE)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key is %s", (FAKE,), None)
    assert ScrubFilter().filter(record)
    assert record.getMessage() == f"key is {REDACTED}"


def test_a_password_in_a_url_is_a_secret_and_any_urls_user_info_leaves_log_lines(monkeypatch):
    """Round 2: ``CLEARML_API_HOST=http://user:pass@host`` was printed as it is."""
    for name in [n for n in __import__("os").environ if n.startswith("CLEARML_")]:
        monkeypatch.delenv(name)
    env = {
        "CLEARML_API_HOST": "https://bob:hunter2-pass@clearml.example:8008",
        "HOME": "/x",
        "CLEARML_CONFIG_FILE": "/nonexistent",
    }
    assert secret_values(env) == ["hunter2-pass"]
    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "server %s down",
        ("http://alice:s3cr3t-value@h:1/api",),
        None,
    )
    assert ScrubFilter().filter(record)  # no secret known to the process: user-info still goes
    assert record.getMessage() == f"server http://{REDACTED}@h:1/api down"


def test_a_secret_used_as_a_config_key_is_renamed(monkeypatch):
    """Round 2: a secret value as a *key* reached checkpoints, .hydra/ and the session."""
    monkeypatch.setenv("MY_API_TOKEN", FAKE)
    cfg = OmegaConf.create({"notes": {FAKE: 1, "kept": "x"}, "deep": [{f"k-{FAKE}": {"v": 2}}]})
    changed = scrub_config(cfg)
    assert FAKE not in OmegaConf.to_yaml(cfg)
    assert OmegaConf.to_container(cfg) == {
        "notes": {"kept": "x", REDACTED: 1},
        "deep": [{f"k-{REDACTED}": {"v": 2}}],
    }
    assert changed == [f"notes.{REDACTED} (a key)", f"deep[0].k-{REDACTED} (a key)"]


def test_a_refusal_that_repeats_a_value_never_repeats_a_secret(monkeypatch, tmp_path):
    """A refused value is printed by Hydra before any log filter exists."""
    import pytest

    from lightdet.guard import UnsafeConfigError
    from tests.conftest import compose_train

    monkeypatch.setenv("MY_API_TOKEN", FAKE)
    with pytest.raises(UnsafeConfigError) as refused:
        compose_train(tmp_path, f"hydra.job.name=../{FAKE}")
    assert "hydra.job.name" in str(refused.value) and FAKE not in str(refused.value)
    assert REDACTED in str(refused.value)
