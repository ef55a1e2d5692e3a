"""ClearML's online path end to end: the real commands, as subprocesses, with the real SDK talking
over HTTP to the loopback API and file server of :mod:`tests.clearml_loopback`.

A dashboard user's path: a run recorded online, the task cloned with ``Hydra/*`` values edited
and enqueued, an agent running the clone (it must train with the edited values, or stop), an
optimizer cloning trials; and what a server can do wrong (fail a call, stall, restart).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.clearml_loopback import ACCESS_KEY, SECRET_KEY, LoopbackClearML
from tests.conftest import (
    CLASSES,
    clearml_env,
    offline_scalars,
    run_train_cli,
    snapshot,
    train_cli_args,
)

pytestmark = pytest.mark.slow
ONE_EPOCH = ("trainer.max_epochs=1", "+trainer.enable_progress_bar=false")


def _run(module: str, args: list[str], env: dict, cwd: Path, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ok(proc) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def _train(env: dict, cwd: Path, data: Path, *overrides: str) -> str:
    """A one-epoch ``make train`` on the tiny shapes data in ``cwd``; returns its output."""
    return _ok(_run("lightdet.train", train_cli_args(cwd, data, *ONE_EPOCH, *overrides), env, cwd))


def _dashboard(env: dict, cwd: Path, script: str) -> str:
    """SDK calls made as the web dashboard makes them (clone, edit, enqueue), in a process of
    their own; returns what the script prints."""
    proc = subprocess.run(
        [sys.executable, "-c", "from clearml import Task\n" + script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return _ok(proc)


def _clone_and_enqueue(env: dict, cwd: Path, base_id: str, edits: dict[str, str]) -> str:
    sets = "".join(f"clone.set_parameter({k!r}, {v!r})\n" for k, v in edits.items())
    out = _dashboard(
        env,
        cwd,
        f"clone = Task.clone(source_task={base_id!r}, name='edited')\n"
        f"{sets}Task.enqueue(clone, queue_name='default')\nprint('CLONE', clone.id)\n",
    )
    return out.split("CLONE ")[1].split()[0]


def _run_as_agent(server: LoopbackClearML, env: dict, cwd: Path, expected: str):
    """``clearml-agent``'s part: take the next task from the queue, mark it started, run the
    training entry point for it (no arguments: the task says everything), mark the outcome."""
    task_id = server.agent_pull()
    assert task_id == expected
    proc = _run("lightdet.train", [], {**env, **server.agent_env(task_id)}, cwd)
    server.agent_done(task_id, proc.returncode)
    return proc


def _runs(root: Path) -> set[Path]:
    return {p.parent.parent for p in root.glob("logs/*/runs/*/.hydra/config.yaml")}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_shapes):
    """One training run recorded online: (server, its task id, the environment, the folder)."""
    server = LoopbackClearML()
    tmp = tmp_path_factory.mktemp("online")
    env = clearml_env(tmp, **server.env)
    output = _train(env, tmp, tiny_shapes)
    (task_id,) = server.tasks
    yield server, task_id, env, tmp, output
    server.close()
    assert server.schema_errors == []


def test_an_online_run_records_its_task_on_the_server(base_run):
    server, task_id, env, tmp, output = base_run
    task = server.tasks[task_id]
    assert task["status"] == "completed"
    assert f"{server.api_host}/projects/" in output  # the summary links the task's page
    assert not (tmp / "clearml" / "offline").exists()  # nothing recorded offline

    # the config: every leaf as an editable Hydra/ parameter, the whole as OmegaConf
    hydra = server.hyperparams(task_id)
    assert hydra["model.net.focal_gamma"] == "2.0" and hydra["data.batch_size"] == "4"
    assert len(hydra) > 100
    omegaconf = yaml.safe_load(task["configuration"]["OmegaConf"]["value"])
    assert omegaconf["model"]["net"]["focal_gamma"] == 2.0
    dataset = yaml.safe_load(task["configuration"]["Dataset"]["value"])
    assert dataset["class_names"] == list(CLASSES)

    # scalars, as stage/name -> title/series; the server's summary of them
    series = {
        (e["metric"], e["variant"]) for e in server.task_events(task_id, "training_stats_scalar")
    }
    expected = {("train", "loss"), ("train", "lr"), ("val", "map"), ("val", "map_50")}
    assert expected | {("val", f"ap_{c}") for c in CLASSES} <= series
    summary = {
        (v["metric"], v["variant"]) for m in task["last_metrics"].values() for v in m.values()
    }
    assert summary == series
    plots = {(e["metric"], e["variant"]) for e in server.task_events(task_id, "plot")}
    assert {("val PR curve @IoU0.5", c) for c in CLASSES} <= plots
    assert ("val confusion matrix @IoU0.5", "counts") in plots
    assert ("val errors (TIDE)", "dAP") in plots

    # debug images: uploaded to the file server, each event pointing at its file
    images = server.task_events(task_id, "training_debug_image")
    assert {e["metric"] for e in images} == {"train samples", "val predictions"}
    for event in images:
        assert server.file(event["url"])[:2] == b"\xff\xd8"  # a JPEG

    # the registered model: its labels, and the checkpoint uploaded byte for byte
    (model,) = server.models.values()
    assert model["task"] == task_id and model["framework"] == "PyTorch"
    assert model["labels"] == {"background": 0, **{c: i + 1 for i, c in enumerate(CLASSES)}}
    uploaded = server.file(model["uri"])
    local = next(tmp.glob("logs/*/runs/*/checkpoints/model_best.ckpt"))
    assert uploaded == local.read_bytes()
    assert task["models"]["output"] == [{"name": "model_best", "model": model["id"]}]
    # its evaluation, where the registry shows it: typed metadata, the model's own table and
    # single values (the registry alone says which model is best and at which threshold)
    meta = model["metadata"]
    assert meta["class_names"]["value"] == ", ".join(CLASSES) and meta["split"]["value"] == "val"
    assert meta["map"]["type"] == meta["score_threshold"]["type"] == "float"
    assert 0 <= float(meta["score_threshold"]["value"]) <= 1
    values = {
        e["variant"]: e["value"]
        for e in server.task_events(model["id"], "training_stats_scalar")
        if e["metric"] == "Summary"
    }
    best_map = max(
        e["value"]
        for e in server.task_events(task_id, "training_stats_scalar")
        if (e["metric"], e["variant"]) == ("val", "map")
    )
    assert values["map"] == pytest.approx(best_map, abs=1e-6)
    assert float(meta["map"]["value"]) == pytest.approx(best_map, abs=1e-5)
    model_plots = {(e["metric"], e["variant"]) for e in server.task_events(model["id"], "plot")}
    assert ("evaluation", "model card") in model_plots

    # credentials travel in the login's Authorization header only
    for call in server.calls:
        assert ACCESS_KEY.encode() not in call.raw and SECRET_KEY.encode() not in call.raw
    assert all(ACCESS_KEY.encode() not in blob for blob in server.files.values())


def test_a_clone_edited_in_the_dashboard_trains_with_the_edited_values(base_run):
    server, base_id, env, tmp, _ = base_run
    clone_id = _clone_and_enqueue(
        env,
        tmp,
        base_id,
        {
            "Hydra/model.net.focal_gamma": "3.5",
            "Hydra/data.batch_size": "2",
            "Hydra/trainer.max_epochs": "2",
        },
    )
    assert server.tasks[clone_id]["status"] == "queued"
    # the dashboard's "output destination" field, edited to a folder of the agent's machine:
    # not a Hydra/ value, so past the write policy but for lightdet's own
    victim = tmp / "victim"
    victim.mkdir()
    (victim / "mine.txt").write_text("a user's file\n")
    server.as_client("tasks.edit", {"task": clone_id, "output": {"destination": victim.as_uri()}})
    before = _runs(tmp)
    _ok(_run_as_agent(server, env, tmp, clone_id))
    assert snapshot(victim) == {"mine.txt": b"a user's file\n"}

    (folder,) = _runs(tmp) - before
    composed = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
    assert composed["model"]["net"]["focal_gamma"] == 3.5
    assert composed["data"]["batch_size"] == 2 and composed["trainer"]["max_epochs"] == 2
    best = next(folder.glob("checkpoints/best-*.ckpt"))
    stored = torch.load(best, weights_only=True)["hyper_parameters"]["config"]
    assert stored["model"]["net"]["focal_gamma"] == 3.5 and stored["data"]["batch_size"] == 2
    # the clone's own scalars: two epochs of two steps of two images
    scalars = server.task_events(clone_id, "training_stats_scalar")
    assert max(e["value"] for e in scalars if e["metric"] == "epoch") == 1
    samples = [e for e in scalars if (e["metric"], e["variant"]) == ("train", "samples")]
    assert sorted(e["value"] for e in samples)[:2] == [2, 4]
    assert server.hyperparams(clone_id)["model.net.focal_gamma"] == "3.5"
    assert server.tasks[clone_id]["status"] == "completed"
    # its model went where the config says: the file server, byte for byte
    (model,) = [m for m in server.models.values() if m["task"] == clone_id]
    assert server.file(model["uri"]) == (folder / "checkpoints" / "model_best.ckpt").read_bytes()


def test_parameters_an_agent_could_not_read_stop_the_run_instead_of_the_defaults(base_run):
    """ClearML's Hydra binding swallows a failed fetch of the task's parameters and composes
    the defaults; lightdet compares and stops."""
    server, base_id, env, tmp, _ = base_run
    clone_id = _clone_and_enqueue(env, tmp, base_id, {"Hydra/model.net.focal_gamma": "3.5"})
    # the binding reads the task (Task.get_task, retried on first use) before anything else;
    # Task.init's own reading comes after lightdet's probe of the server (debug.ping)
    server.fail("tasks.get_by_id", kind="error", until="debug.ping")
    before = _runs(tmp)
    proc = _run_as_agent(server, env, tmp, clone_id)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    (line,) = [x for x in output.splitlines() if x.startswith(f"ClearML: task {clone_id} was")]
    assert "parameters did not reach the composed config" in line
    # every value of the task, the edited one among them (the base run's command-line values
    # too: defaults are all the agent composed)
    assert "model.net.focal_gamma" in line and "data.source.num_train" in line
    assert "Traceback" not in output
    assert server.tasks[clone_id]["status"] == "failed"
    for folder in _runs(tmp) - before:  # stopped before training: no checkpoint, no scalar
        assert not list(folder.glob("checkpoints/*.ckpt"))
    assert server.task_events(clone_id, "training_stats_scalar") == []


@pytest.mark.parametrize(
    ("edit", "value", "says"),
    [
        ("model.net.focal_gama", "2.5", "not an argument of build_retinanet; did you mean"),
        ("model.net.focal_gamma", "-1.0", "-1.0"),  # a value the guard refuses
    ],
)
def test_an_edit_the_config_does_not_take_is_a_one_line_error(base_run, edit, value, says):
    server, base_id, env, tmp, _ = base_run
    clone_id = _clone_and_enqueue(env, tmp, base_id, {f"Hydra/{edit}": value})
    before = _runs(tmp)
    proc = _run_as_agent(server, env, tmp, clone_id)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in output, output[-3000:]
    (line,) = [x for x in output.splitlines() if x.startswith(f"config: {edit}")]
    assert says in line
    assert _runs(tmp) == before  # refused before anything was created
    assert server.tasks[clone_id]["status"] == "failed"


class _Agent(threading.Thread):
    """A ``clearml-agent`` serving the default queue until stopped: each task it takes is run
    as the training entry point, one at a time."""

    def __init__(self, server: LoopbackClearML, env: dict, cwd: Path) -> None:
        super().__init__(daemon=True)
        self.server, self.env, self.cwd = server, env, cwd
        self.ran: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            task_id = self.server.agent_pull()
            if task_id is None:
                time.sleep(0.5)
                continue
            proc = _run(
                "lightdet.train", [], {**self.env, **self.server.agent_env(task_id)}, self.cwd
            )
            self.ran[task_id] = proc.returncode
            self.server.agent_done(task_id, proc.returncode)


def test_make_hpo_drives_trials_as_cloned_tasks_through_the_server(base_run):
    server, base_id, env, tmp, _ = base_run
    agent = _Agent(server, env, tmp)
    agent.start()
    try:
        proc = _run(
            "lightdet.hpo",
            [
                "backend=clearml",
                f"paths.root_dir={tmp}",
                f"hpo.clearml.base_task_id={base_id}",
                "hpo.n_trials=2",
                "hpo.clearml.max_concurrent=1",
                "hpo.clearml.poll_period_min=0.02",
                "hpo.study_name=online",
            ],
            env,
            tmp,
            timeout=400,
        )
    finally:
        agent.stop.set()
        agent.join(timeout=120)
    output = _ok(proc)
    trials = [t for t in server.tasks.values() if t.get("parent") and t["id"] in agent.ran]
    assert len(trials) >= 2 and all(code == 0 for code in agent.ran.values()), agent.ran
    for trial in trials:
        params = server.hyperparams(trial["id"])
        # each trial trained with its sampled values: they are in its checkpoint's config
        assert params["model.net.focal_gamma"] != "2.0"
        assert trial["status"] == "completed"
        assert trial["last_metrics"]  # the optimizer's objective comes from these
    (optimizer,) = [t for t in server.tasks.values() if t.get("type") == "optimizer"]
    assert {t["parent"] for t in trials} == {optimizer["id"]}
    # read back: the table holds each trial's sampled values and its best val/map, as the
    # server summarised the trial's scalars
    (table,) = tmp.glob("logs/**/trials.csv")
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == len(trials)
    best_map = {
        server.hyperparams(t["id"])["model.net.focal_gamma"]: next(
            v["max_value"]
            for m in t["last_metrics"].values()
            for v in m.values()
            if (v["metric"], v["variant"]) == ("val", "map")
        )
        for t in trials
    }
    assert {float(r["model.net.focal_gamma"]): float(r["value"]) for r in rows} == {
        float(k): float(v) for k, v in best_map.items()
    }
    assert "best" in output.lower()


def test_make_remote_enqueues_the_run_and_an_agent_trains_it(base_run, tiny_shapes):
    """``make remote``: the task is recorded and queued, nothing trains here; the agent that
    takes it trains (the queue setting it carries is a no-op there)."""
    server, _, env, tmp, _ = base_run
    known, before = set(server.tasks), _runs(tmp)
    output = _train(env, tmp, tiny_shapes, "logger.clearml.remote_queue=default")
    (task_id,) = set(server.tasks) - known
    task = server.tasks[task_id]
    assert task["status"] == "queued" and "enqueued to 'default'" in output
    queue = server.queues[server.queue("default")]
    assert task_id in [e["task"] for e in queue["entries"]]
    assert server.hyperparams(task_id)["logger.clearml.remote_queue"] == "default"
    for folder in _runs(tmp) - before:  # no training here
        assert not list(folder.glob("checkpoints/*.ckpt"))
    assert server.task_events(task_id, "training_stats_scalar") == []

    _ok(_run_as_agent(server, env, tmp, task_id))
    assert server.tasks[task_id]["status"] == "completed"
    assert {e["metric"] for e in server.task_events(task_id, "training_stats_scalar")} >= {
        "train",
        "val",
    }


def test_make_clearml_import_uploads_an_offline_session(base_run, tiny_shapes, tmp_path):
    server, _, env, _, _ = base_run
    proc, session = run_train_cli(tmp_path, tiny_shapes, *ONE_EPOCH)  # no server: offline
    recorded = json.loads((session / "task.json").read_text())
    (offline_model,) = {m["id"] for m in recorded["offline_output_models"]}
    offline = [e for e in offline_scalars(session) if e["task"] == recorded["id"]]
    model_values = [e for e in offline_scalars(session) if e["task"] == offline_model]
    known = set(server.tasks)
    zipped = session.with_suffix(".zip")
    output = _ok(_run("lightdet.tracking.server", [str(zipped)], env, tmp_path))
    (task_id,) = set(server.tasks) - known
    assert f"imported as task {task_id}" in output
    task = server.tasks[task_id]
    assert server.hyperparams(task_id)["model.net.focal_gamma"] == "2.0"
    assert "OmegaConf" in task["configuration"]
    # every scalar recorded offline, now on the server, value for value
    uploaded = server.task_events(task_id, "training_stats_scalar")
    key = lambda e: (e["metric"], e["variant"], e["iter"], round(e["value"], 6))  # noqa: E731
    assert sorted(map(key, uploaded)) == sorted(map(key, offline))
    assert task["status"] == "completed"
    # the model registered offline, uploaded with its labels, byte for byte
    (model,) = [m for m in server.models.values() if m["task"] == task_id]
    assert model["labels"] == {"background": 0, **{c: i + 1 for i, c in enumerate(CLASSES)}}
    local = next(tmp_path.glob("logs/*/runs/*/checkpoints/model_best.ckpt"))
    assert server.file(model["uri"]) == local.read_bytes()
    # ... with its model card's values (recorded offline as the model's own events)
    card = {
        e["variant"]: e["value"] for e in server.task_events(model["id"], "training_stats_scalar")
    }
    assert card == {e["variant"]: e["value"] for e in model_values} and "map" in card
    assert zipped.is_file() and session.is_dir()  # the session itself is left as it was


@pytest.fixture
def own_server(tmp_path):
    """A server of the test's own, for faults that must not reach the other tests' tasks."""
    server = LoopbackClearML()
    yield server, clearml_env(tmp_path, **server.env)
    server.close()
    assert server.schema_errors == []


def test_a_call_the_server_stalls_mid_run_is_bounded_and_named(own_server, tiny_shapes, tmp_path):
    """The first debug image's upload (training samples, at the start of fitting) gets no
    answer: ClearML's uploader waits on it in the background, training goes on, the first call
    at the end that waits on the server is bounded (registering the best model, which waits
    for its model card's events, or the final flush: whichever the queue holds up), and the
    summary names it and says the server's record is incomplete."""
    server, env = own_server
    server.fail("files.upload", kind="stall")
    began = time.monotonic()
    output = _train(env, tmp_path, tiny_shapes, "logger.clearml.upload_timeout=3")
    assert time.monotonic() - began < 120
    (task_id,) = server.tasks
    (named,) = re.findall(
        r"ClearML: (.+?) got no answer from the server within 3 s; "
        r"the rest of this run is not sent to ClearML",
        output,
    )
    assert named in ("uploading the model 'retinanet best'", "flushing reports and uploads")
    (line,) = [x for x in output.splitlines() if "incomplete:" in x]
    assert f"the server left {named} unanswered" in line
    assert "training finished" in output
    assert list(tmp_path.glob("logs/*/runs/*/checkpoints/best-*.ckpt"))
    # the config went before the stall; the stalled call itself was never answered (whether
    # the SDK's retry of it, or the scalars queued behind it, got through in the seconds the
    # close is given is the SDK's timing, not checked)
    assert server.hyperparams(task_id)["model.net.focal_gamma"] == "2.0"
    assert any(c.name == "files.upload" for c in server.calls)
    assert server.tasks[task_id]["status"] != "completed"  # nobody told it the run ended


def test_a_server_restarted_mid_run_loses_nothing(own_server, tiny_shapes, tmp_path):
    """Down for a few seconds after the run's first scalars arrived: ClearML's client retries,
    the run goes on, and the server ends with the whole record."""
    server, env = own_server
    command = [sys.executable, "-m", "lightdet.train", *train_cli_args(tmp_path, tiny_shapes)]
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not any(c.name == "events.add_batch" for c in server.calls):
            assert proc.poll() is None and time.monotonic() < deadline, "no scalars arrived"
            time.sleep(0.2)
        server.restart(down_s=4)
        back = time.monotonic()
        assert proc.poll() is None  # the run was still going when the server came back
        output, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert "incomplete" not in output and "got no answer" not in output
    (task_id,) = server.tasks
    task = server.tasks[task_id]
    assert task["status"] == "completed"
    # both epochs' validation reached the server, and the model
    maps = [
        e
        for e in server.task_events(task_id, "training_stats_scalar")
        if (e["metric"], e["variant"]) == ("val", "map")
    ]
    assert len(maps) == 2
    assert any(c.name == "events.add_batch" and c.at > back for c in server.calls)
    (model,) = server.models.values()
    local = next(tmp_path.glob("logs/*/runs/*/checkpoints/model_best.ckpt"))
    assert server.file(model["uri"]) == local.read_bytes()


def test_the_privacy_switches_send_scalars_and_tables_only(own_server, tiny_shapes, tmp_path):
    server, env = own_server
    _train(
        env,
        tmp_path,
        tiny_shapes,
        "logger.clearml.upload_images=false",
        "logger.clearml.upload_models=false",
    )
    (task_id,) = server.tasks
    assert server.task_events(task_id, "training_debug_image") == []
    assert not any(c.name == "files.upload" for c in server.calls)  # no image, no model
    assert server.files == {}
    series = {
        (e["metric"], e["variant"]) for e in server.task_events(task_id, "training_stats_scalar")
    }
    assert {("train", "loss"), ("val", "map")} <= series
    assert ("val confusion matrix @IoU0.5", "counts") in {
        (e["metric"], e["variant"]) for e in server.task_events(task_id, "plot")
    }
    # the model is registered by its local path, not uploaded
    (model,) = server.models.values()
    local = next(tmp_path.glob("logs/*/runs/*/checkpoints/model_best.ckpt"))
    assert model["uri"] == local.as_uri() or model["uri"] == str(local), model["uri"]


def test_an_export_records_its_map_change_on_the_registered_model(base_run):
    """make export PRECISION=int8 of the run's best checkpoint: each file's mAP change (the
    float file's, the INT8 file's) goes to the model the run registered, as metadata and single
    values (the registry says what exporting costs)."""
    from lightdet.guard.checkpoints import inspect_checkpoint

    server, task_id, env, tmp, _ = base_run
    (best,) = [  # the base run's, not its clones': the task its resumable state names
        path
        for path in tmp.glob("logs/*/runs/*/checkpoints/best-*.ckpt")
        if inspect_checkpoint(path.with_name("last.ckpt")).task_id == task_id
    ]
    int8 = ["precision=int8", "quantize.calibration_images=4", "quantize.max_map_drop=1.0"]
    args = [f"ckpt_path={best}", f"paths.root_dir={tmp}", *int8]
    output = _ok(_run("lightdet.export", args, env, tmp))
    (model,) = [m for m in server.models.values() if m["task"] == task_id]
    assert f"mAP change recorded on ClearML model {model['name']!r} ({model['id']})" in output
    (path,) = tmp.glob("logs/*/runs/*/export_report.json")
    report = json.loads(path.read_text())
    change = report["coco"]["map"]["exported"] - report["coco"]["map"]["pytorch"]
    meta = model["metadata"]
    assert float(meta["export_onnx_map_change"]["value"]) == pytest.approx(change, abs=1e-6)
    assert meta["export_onnx_file"]["value"] == Path(report["file"]).name
    assert "map" in meta  # the training's model card stays (added to, not replaced)
    values = {
        e["variant"]: e["value"]
        for e in server.task_events(model["id"], "training_stats_scalar")
        if e["metric"] == "Summary"
    }
    assert values["export_onnx_map_change"] == pytest.approx(change, abs=1e-9)
    # the INT8 file's change beside it, under its own name
    gate = report["int8"]["gate"]
    assert float(meta["export_onnx_int8_map_change"]["value"]) == pytest.approx(
        gate["change"]["map"], abs=1e-6
    )
    assert meta["export_onnx_int8_file"]["value"] == Path(report["int8"]["file"]).name
    assert values["export_onnx_int8_map_change"] == pytest.approx(gate["change"]["map"], abs=1e-9)
