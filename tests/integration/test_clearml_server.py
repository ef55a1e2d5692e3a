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
    env = {"CLEARML_API_HOST": host, "CLEARML_WEB_HOST": host, "CLEARML_FILES_HOST": host,
           "CLEARML_API_ACCESS_KEY": access, "CLEARML_API_SECRET_KEY": secret}  # fmt: skip
    start = datetime.now()
    began = time.monotonic()
    try:
        proc, session = run_train_cli(
            tmp_path, tiny_shapes, "logger.clearml.connect_timeout=3", env=env
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


class _PingOnly:
    """A loopback ClearML stand-in that answers ``debug.ping`` and never answers anything
    else (``auth.login`` included): what a half-started or overloaded server does."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.release = threading.Event()
        self.logins = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.startswith("/debug.ping"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"data": {}}')
                    return
                outer.logins += self.path.startswith("/auth.login")
                outer.release.wait(300)  # never, within the run

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_server_that_answers_ping_but_never_login_does_not_hang_training(tmp_path, tiny_shapes):
    server = _PingOnly()
    env = {"CLEARML_API_HOST": server.host, "CLEARML_WEB_HOST": server.host,
           "CLEARML_FILES_HOST": server.host, "CLEARML_API_ACCESS_KEY": "A" * 20,
           "CLEARML_API_SECRET_KEY": "S" * 40}  # fmt: skip
    began = time.monotonic()
    try:
        proc, session = run_train_cli(
            tmp_path, tiny_shapes, "logger.clearml.connect_timeout=2",
            "logger.clearml.connect_tries=2", env=env,
        )  # fmt: skip
    finally:
        server.close()
    assert time.monotonic() - began < 90  # ClearML's own login retries: 170 s and more
    assert server.logins >= 1  # it was asked, and its silence was bounded
    output = proc.stdout + proc.stderr
    assert f"ClearML: server {server.host} is not reachable" in output
    assert (session / "task.json").is_file() and list(tmp_path.rglob("*.ckpt"))
