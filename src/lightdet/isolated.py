"""A module's ``main`` in a fresh Python process, a JSON request in and a JSON result out:
what a measurement needs (no threads, allocator state or Hydra left by the caller) and what a
heavy step needs to give its memory back. The module is run as
``python -m <module> <request.json> <result.json>``; both files stay in the folder given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_isolated(
    module: str,
    request: dict,
    folder: Path,
    what: str,
    names=("request.json", "result.json"),
    *,
    show_output: bool = False,
) -> dict:
    """Write ``request`` into ``folder``, run ``module`` on it, return what it wrote.

    Args:
        what: the step as an error names it ("latency of <ckpt>").
        show_output: let the process's standard output through (its progress lines);
            otherwise only the end of its output is kept, for the error.

    Raises:
        RuntimeError: the process failed or wrote nothing, with the end of its output.
    """
    folder.mkdir(parents=True, exist_ok=True)
    request_path, result_path = folder / names[0], folder / names[1]
    request_path.write_text(json.dumps(request, indent=2))
    result_path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", module, str(request_path), str(result_path)],
        stdout=None if show_output else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0 or not result_path.is_file():
        tail = ((done.stdout or "") + done.stderr)[-2000:]
        raise RuntimeError(f"{what}: the process failed ({done.returncode}):\n{tail}")
    return json.loads(result_path.read_text())
