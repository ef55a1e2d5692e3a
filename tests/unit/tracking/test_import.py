"""``make clearml-import``'s reading of an offline session (the upload itself is tested against
the loopback server in tests/integration/test_clearml_online.py)."""

import json
import shutil
import zipfile

import pytest
import yaml

from lightdet.guard import UnsafeConfigError
from lightdet.tracking.server import importable
from tests.conftest import snapshot

FILES = "http://files.loopback.test:8081"


def _session(root, clearml=None):
    """A session as ClearML 2.1.12 writes it for a run with one registered model."""
    session = root / "offline-abc"
    (session / "models").mkdir(parents=True)
    (session / "models" / "model_best.ckpt").write_bytes(b"weights")
    (session / "metrics.jsonl").write_text("[]\n")
    config = {"logger": {"clearml": {"upload_models": True, "output_uri": None, **(clearml or {})}}}
    record = {
        "id": "offline-abc",
        "configuration": {"OmegaConf": {"name": "OmegaConf", "value": yaml.safe_dump(config)}},
        "offline_output_models": [
            {
                "id": "m1",
                "init": {"config_text": "{config: {}}", "config_dict": {"config": {}}, "name": "n"},
                "weights": {"weights_filename": str(session / "models" / "model_best.ckpt")},
                "output_uri": None,
            }
        ],
    }
    (session / "task.json").write_text(json.dumps(record))
    return session


@pytest.fixture(autouse=True)
def _files_server(monkeypatch):
    monkeypatch.setenv("CLEARML_FILES_HOST", FILES)


def test_a_session_folder_is_read_only_and_its_copy_imports(tmp_path):
    session = _session(tmp_path / "cache")
    before = snapshot(session)
    folder = importable(session, tmp_path / "scratch")
    (model,) = json.loads((folder / "task.json").read_text())["offline_output_models"]
    # ClearML's import refuses both: the text (the same configuration) is kept
    assert model["init"] == {"config_text": "{config: {}}", "name": "n"}
    assert model["output_uri"] == FILES  # uploaded, as the run would have online
    assert (folder / "models").resolve() == (session / "models").resolve()  # linked, not copied
    assert snapshot(session) == before


def test_a_zipped_session_is_unpacked_into_the_scratch_folder(tmp_path):
    session = _session(tmp_path / "cache")
    archive = shutil.make_archive(str(session), "zip", session)
    folder = importable(tmp_path / "cache" / "offline-abc.zip", tmp_path / "scratch")
    assert folder.is_relative_to(tmp_path / "scratch")
    assert (folder / "models" / "model_best.ckpt").read_bytes() == b"weights"
    assert (
        "config_dict"
        not in json.loads((folder / "task.json").read_text())["offline_output_models"][0]["init"]
    )
    assert zipfile.ZipFile(archive).read("task.json") == (session / "task.json").read_bytes()


def test_a_run_that_kept_its_models_local_keeps_them_local(tmp_path):
    session = _session(tmp_path / "cache", {"upload_models": False})
    folder = importable(session, tmp_path / "scratch")
    assert (
        json.loads((folder / "task.json").read_text())["offline_output_models"][0]["output_uri"]
        is None
    )


def test_an_output_uri_the_write_policy_refuses_stops_the_import(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "mine.txt").write_text("a user's file\n")
    session = _session(tmp_path / "cache", {"output_uri": f"file://{victim}"})
    with pytest.raises(UnsafeConfigError, match="logger.clearml.output_uri"):
        importable(session, tmp_path / "scratch")
    assert snapshot(victim) == {"mine.txt": b"a user's file\n"}
