"""A configured ClearML server that does not answer must not stop (or hang) training."""

import re
import socket
import time
import uuid
from datetime import datetime

import pytest

from tests.conftest import run_train_cli


@pytest.mark.slow
def test_unreachable_server_falls_back_to_offline_and_never_leaks_credentials(
    tmp_path, tiny_shapes
):
    silent = socket.socket()  # accepts connections, never answers: every try runs into its timeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    host = f"http://127.0.0.1:{silent.getsockname()[1]}"
    access, secret = f"ACCESS{uuid.uuid4().hex}", f"SECRET{uuid.uuid4().hex}"
    env = {
        "CLEARML_API_HOST": host,
        "CLEARML_WEB_HOST": host,
        "CLEARML_FILES_HOST": host,
        "CLEARML_API_ACCESS_KEY": access,
        "CLEARML_API_SECRET_KEY": secret,
    }
    start = datetime.now()
    began = time.monotonic()
    try:
        proc, session = run_train_cli(
            tmp_path,
            tiny_shapes,
            "logger.clearml.connect_timeout=1",
            "logger.clearml.connect_tries=2",
            env=env,
        )
    finally:
        silent.close()
    assert time.monotonic() - began < 120  # the whole run, not hours of ClearML's own retries

    output = proc.stdout + proc.stderr
    warning = re.search(
        r"\[([\d\- :,]+)\]\[[\w.]+\]\[WARNING\] - ClearML: server (\S+) is not reachable", output
    )
    assert warning, output[-3000:]
    warned_at = datetime.strptime(warning.group(1), "%Y-%m-%d %H:%M:%S,%f")
    assert (warned_at - start).total_seconds() < 30
    assert warning.group(2) == host

    assert (session / "task.json").is_file() and session.with_suffix(
        ".zip"
    ).is_file()  # kept for import
    assert "recording offline in" in output
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert checkpoints  # training completed
    for key in (access, secret):
        assert key not in output
        for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
            assert key.encode() not in path.read_bytes(), f"{key[:6]}... found in {path}"


class _HalfAlive:
    """A loopback ClearML stand-in that answers the calls in ``answers`` and never answers
    anything else: what a half-started or overloaded server does. ``auth.login`` gets a token."""

    def __init__(self, answers=("debug.ping",)) -> None:
        import http.server
        import json
        import threading

        import jwt

        self.release = threading.Event()
        self.calls: list[str] = []
        token = jwt.encode({"exp": int(time.time()) + 3600, "identity": {}}, "k" * 32)
        body = json.dumps({"meta": {"result_code": 200}, "data": {"token": token}}).encode()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                call = self.path.split("?")[0].rsplit("/", 1)[-1]
                outer.calls.append(call)
                if call in answers:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                outer.release.wait(300)  # never, within the run

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"http://127.0.0.1:{self.server.server_port}"
        self.env = {
            "CLEARML_API_HOST": self.host,
            "CLEARML_WEB_HOST": self.host,
            "CLEARML_FILES_HOST": self.host,
            "CLEARML_API_ACCESS_KEY": "A" * 20,
            "CLEARML_API_SECRET_KEY": "S" * 40,
        }

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_server_that_answers_ping_but_never_login_does_not_hang_training(tmp_path, tiny_shapes):
    server = _HalfAlive(answers=("debug.ping",))
    began = time.monotonic()
    try:
        proc, session = run_train_cli(
            tmp_path,
            tiny_shapes,
            "logger.clearml.connect_timeout=1",
            "logger.clearml.connect_tries=2",
            env=server.env,
        )
    finally:
        server.close()
    assert time.monotonic() - began < 90  # ClearML's own login retries: 170 s and more
    assert "auth.login" in server.calls  # it was asked, and its silence was bounded
    output = proc.stdout + proc.stderr
    assert f"ClearML: server {server.host} is not reachable" in output
    assert (session / "task.json").is_file() and list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_a_server_that_answers_its_login_and_then_nothing_does_not_hang_training(
    tmp_path, tiny_shapes
):
    """The probe passes; ClearML's task creation then waits on calls that never return (it
    would retry them for hours): bounded by logger.clearml.call_timeout, then offline."""
    server = _HalfAlive(answers=("debug.ping", "auth.login"))
    began = time.monotonic()
    try:
        proc, session = run_train_cli(
            tmp_path, tiny_shapes, "logger.clearml.call_timeout=2", env=server.env
        )
    finally:
        server.close()
    assert time.monotonic() - began < 90
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    # ClearML itself got past the login and was stuck on the next call
    assert {"debug.ping", "auth.login"} < set(server.calls), server.calls
    assert (
        f"ClearML: server {server.host} answered its login, but creating the task got no answer "
        "within 2 s; training goes on and is recorded offline." in output
    )
    assert (session / "task.json").is_file() and session.with_suffix(".zip").is_file()
    assert list(tmp_path.rglob("*.ckpt"))
