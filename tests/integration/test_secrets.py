"""A fake credential in the environment never reaches a checkpoint, a log, the run folder or
the offline ClearML session: interpolated, the run is refused; typed literally, it is scrubbed."""

import subprocess
import sys

import pytest

from tests.conftest import TINY, clean_env

# joined at run time: ClearML records the repository's uncommitted diff, which may hold this
# file, and the values must appear nowhere but in the environment
FAKE = "-".join(("fake", "secret", "4b1d8e6a"))


def _run(tmp_path, data_root, *overrides):
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(
        CLEARML_CACHE_DIR=str(tmp_path / "clearml"),
        CLEARML_CONFIG_FILE=str(conf),
        CLEARML_OFFLINE_MODE="1",
        CLEARML_API_SECRET_KEY=FAKE,
        MY_SERVICE_TOKEN=FAKE,
    )
    args = [
        f"paths.root_dir={tmp_path}",
        f"data.source.root={data_root}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=0",
        "data.batch_size=4",
        "model.net.min_size=96",
        "model.net.max_size=96",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
        *overrides,
    ]
    return subprocess.run(
        [sys.executable, "-m", "lightdet.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _files_holding(root, text):
    needle = text.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_an_interpolated_credential_is_refused_and_a_literal_one_scrubbed(tmp_path, tiny_shapes):
    refused = _run(
        tmp_path,
        tiny_shapes,
        "task_name=${oc.env:CLEARML_API_SECRET_KEY}",
        "logger.clearml.tags=[${oc.env:MY_SERVICE_TOKEN}]",
    )
    assert refused.returncode == 1
    assert "the resolver 'oc.env:CLEARML_API_SECRET_KEY' is not allowed" in refused.stderr
    assert not (tmp_path / "logs").exists()

    typed = _run(tmp_path, tiny_shapes, f"task_name=run-{FAKE}", f"logger.clearml.tags=[{FAKE}]")
    assert typed.returncode == 0, typed.stderr[-3000:]
    (checkpoint,) = (tmp_path / "logs" / "run-REDACTED" / "runs").glob("*/checkpoints/best-*.ckpt")
    session = next((tmp_path / "clearml" / "offline").glob("*/task.json"))
    assert session.read_text().count("REDACTED") >= 2  # the task name and tag were recorded
    assert FAKE not in typed.stdout + typed.stderr
    assert _files_holding(tmp_path, FAKE) == []  # checkpoints, logs, .hydra/, session, zips
    assert (
        checkpoint.stat().st_size > 0 and "held a credential's value" in typed.stdout + typed.stderr
    )


PASSWORD = "-".join(("hunter2", "0c5e9d71"))
HOST = f"http://lightdet:{PASSWORD}@127.0.0.1:9"  # the discard port: refused at once


def test_make_doctor_never_prints_a_password_in_the_server_url(tmp_path):
    env = clean_env(
        CLEARML_API_HOST=HOST,
        CLEARML_API_ACCESS_KEY="AK-0123456789",
        CLEARML_CONFIG_FILE=str(tmp_path / "none.conf"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lightdet.doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "http://REDACTED@127.0.0.1:9" in proc.stdout


@pytest.mark.slow
def test_a_password_in_the_server_url_and_a_secret_key_reach_no_output(tmp_path, tiny_shapes):
    """Round 2: the server URL's password was printed to the console and train.log when the
    server did not answer; a secret in the config was kept in every record. (A secret used as
    a config key of its own is refused by the schema now, without repeating it: below.)"""
    conf = tmp_path / "clearml.conf"
    conf.write_text("sdk.development.report_use_subprocess: false\n")
    env = clean_env(
        CLEARML_CACHE_DIR=str(tmp_path / "clearml"),
        CLEARML_CONFIG_FILE=str(conf),
        CLEARML_API_HOST=HOST,
        CLEARML_API_ACCESS_KEY="AK-0123456789",
        CLEARML_API_SECRET_KEY=FAKE,
    )
    args = [
        f"paths.root_dir={tmp_path}",
        f"data.source.root={tiny_shapes}",
        *(f"++data.source.{k}={v}" for k, v in TINY.items()),
        "data.num_workers=0",
        "data.batch_size=4",
        "model.net.min_size=96",
        "model.net.max_size=96",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
        "logger.clearml.connect_tries=1",
        "logger.clearml.connect_timeout=1",
        f"logger.clearml.tags=[{FAKE}]",  # a secret in a recorded value
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "lightdet.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout + proc.stderr
    assert "http://REDACTED@127.0.0.1:9 is not reachable" in shown  # the warning was shown
    assert PASSWORD not in shown and FAKE not in shown
    (log,) = (tmp_path / "logs").rglob("train.log")
    assert "REDACTED@127.0.0.1:9" in log.read_text()
    assert _files_holding(tmp_path, PASSWORD) == [] and _files_holding(tmp_path, FAKE) == []


def test_a_secret_as_a_config_key_is_refused_without_being_repeated(monkeypatch):
    """Round 2 put a credential into the config as a key (``+notes.<secret>=1``) and found it
    in every record; the schema now refuses a key nothing reads, and its message, which names
    the key, is scrubbed like every other refusal."""
    from hydra import compose, initialize_config_dir

    from lightdet.cli import CONFIG_DIR
    from lightdet.guard import ConfigValueError

    monkeypatch.setenv("CLEARML_API_SECRET_KEY", FAKE)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        with pytest.raises(ConfigValueError) as caught:
            compose(config_name="train", overrides=[f"+notes.{FAKE}=1"])
    assert "not a key lightdet reads" in str(caught.value) and FAKE not in str(caught.value)
