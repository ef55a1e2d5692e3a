"""Whether a ClearML server is configured and answers, asked before anything waits on it.

The ClearML SDK is imported inside the functions that need it, so that deciding "offline" (and
the local search, which asks) does not cost its import.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import requests

log = logging.getLogger(__name__)


def server_configured() -> bool:
    """Whether ClearML credentials exist (environment or ``clearml.conf``)."""
    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN
    from clearml.config import config_obj

    if ENV_ACCESS_KEY.get() or ENV_AUTH_TOKEN.get():
        return True
    return bool(config_obj.get("api.credentials.access_key", None))


def offline_requested(offline: bool | None) -> bool:
    """Offline when asked (config, ``CLEARML_OFFLINE_MODE``) or when no server is configured."""
    if offline is not None:
        return bool(offline)
    if os.environ.get("CLEARML_OFFLINE_MODE", "").lower() in ("1", "true", "yes"):
        return True
    return not server_configured()


def api_host() -> str:
    """The API server ClearML would talk to (``api.api_server`` or ``CLEARML_API_HOST``)."""
    from clearml.backend_api.session import Session

    return Session.get_api_server_host()


def shown_host() -> str:
    """:func:`api_host` as it may be printed: a URL's user-info (a password) replaced."""
    from lightdet.guard.secrets import scrub_line

    return scrub_line(api_host())


def _login_auth() -> tuple[dict, tuple[str, str] | None]:
    """Headers and basic auth for ``auth.login``, from ClearML's own settings."""
    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN, ENV_SECRET_KEY
    from clearml.config import config_obj

    token = ENV_AUTH_TOKEN.get()
    if token:
        return {"Authorization": f"Bearer {token}"}, None
    access = ENV_ACCESS_KEY.get() or config_obj.get("api.credentials.access_key", None)
    secret = ENV_SECRET_KEY.get() or config_obj.get("api.credentials.secret_key", None)
    return {}, (str(access), str(secret)) if access and secret else None


def server_reachable(
    host: str, *, tries: int = 3, timeout: float = 5.0, wait: float = 2.0, login: bool = False
) -> bool:
    """Whether the ClearML API server answers, within ``tries`` bounded attempts: its
    ``debug.ping``, and with ``login`` then its ``auth.login`` too (the first call
    ``Task.init`` makes, which a half-alive server can leave hanging).

    ClearML's own client retries 240 times with back-off (hours) before giving up; asking first
    keeps a server that does not answer from hanging training. Any HTTP answer counts (a wrong
    key is ClearML's to report, loudly).
    """
    calls = [("debug.ping", ({}, None))] + ([("auth.login", _login_auth())] if login else [])
    for attempt in range(tries):
        try:
            for call, (headers, auth) in calls:
                requests.get(
                    f"{host.rstrip('/')}/{call}", timeout=timeout, headers=headers, auth=auth
                )
            return True
        except requests.RequestException as err:
            log.info(
                "ClearML server %s: attempt %d/%d failed at %s (%s)",
                host,
                attempt + 1,
                tries,
                call,
                err,
            )
            if attempt + 1 < tries:
                time.sleep(wait)
    return False


def server_available(opts: Mapping, tries: int | None = None) -> bool:
    """Whether to use the ClearML server: none asked for offline, and it answers.

    Args:
        opts: the ``logger.clearml`` config.
        tries: probe attempts (default ``opts.connect_tries``).
    """
    if offline_requested(opts.get("offline")):
        return False
    return server_reachable(
        api_host(),
        tries=opts.get("connect_tries", 3) if tries is None else tries,
        timeout=opts.get("connect_timeout", 5.0),
        login=True,
    )


def import_session(session: str) -> str:
    """Upload an offline session (its folder or ``.zip``) to the configured server; returns
    the new task's id. The session, the credentials and the server are checked first, so a
    missing one is a one-line error (:class:`SystemExit`), not ClearML's traceback."""
    path = Path(session)
    if not path.exists():
        raise SystemExit(
            f"SESSION={session}: no such offline session (a folder or .zip under "
            "the ClearML cache's offline/ folder, as the run's log says)"
        )
    if not (path.suffix == ".zip" or (path / "task.json").is_file()):
        raise SystemExit(f"SESSION={session}: not an offline session (no task.json in it)")
    if not server_configured():
        raise SystemExit(
            "clearml-import: no ClearML server is configured; run `clearml-init` "
            "(or set CLEARML_API_HOST, CLEARML_API_ACCESS_KEY, "
            "CLEARML_API_SECRET_KEY) first"
        )
    if not server_reachable(api_host(), login=True):
        raise SystemExit(f"clearml-import: the ClearML server {shown_host()} does not answer")
    from clearml import Task

    from lightdet.guard.targets import UnsafeConfigError

    with tempfile.TemporaryDirectory(prefix="lightdet-import-") as scratch:
        try:
            folder = importable(path, Path(scratch))
        except UnsafeConfigError as err:  # the session's output_uri, under today's policy
            raise SystemExit(f"SESSION={session}: {err}") from None
        return Task.import_offline_session(str(folder))


def importable(session: Path, scratch: Path) -> Path:
    """The offline session ``session`` (a folder or ``.zip``) as ClearML's import takes it.

    ClearML (2.1.12) records an offline model's configuration twice, as text and as a dict,
    and its own import then refuses the pair ("Only one of (config_text, config_dict) is
    allowed"): no session with a registered model could be imported (found by the loopback
    server's tests). The session is only read: a ``.zip`` is unpacked into ``scratch`` (as the
    import would do itself), a folder is mirrored there by links, and the copy's ``task.json``
    keeps the text only (the same configuration). Returns the folder to import.
    """
    session, scratch = Path(session), Path(scratch)
    folder = scratch / "session"
    if session.is_file():
        with zipfile.ZipFile(session) as archive:
            archive.extractall(folder)  # member names with .. or a root are made safe by zipfile
    else:
        folder.mkdir(parents=True)
        for entry in session.iterdir():
            if entry.name != "task.json":
                (folder / entry.name).symlink_to(entry.resolve())
        (folder / "task.json").write_bytes((session / "task.json").read_bytes())
    record = json.loads((folder / "task.json").read_text())
    destination = _model_destination(record)
    for model in record.get("offline_output_models", []):
        if model["init"].get("config_text") is not None:
            model["init"].pop("config_dict", None)
        if destination and not model.get("output_uri"):
            model["output_uri"] = destination
    (folder / "task.json").write_text(json.dumps(record))
    return folder


def _model_destination(record: dict) -> str | None:
    """Where the imported task uploads its models: as the run would have online, by its
    recorded ``logger.clearml`` settings (``output_uri``, checked by the write policy, else the
    configured file server; none with ``upload_models: false``). An offline run records no
    destination, and ClearML's import then registers each model by its path in the session
    folder, a file nobody else can read and ``make clean`` removes."""
    import yaml
    from clearml.backend_api import Session

    from lightdet.guard.writes import check_upload

    text = record.get("configuration", {}).get("OmegaConf", {}).get("value") or ""
    opts = ((yaml.safe_load(text) or {}).get("logger") or {}).get("clearml") or {}
    if opts.get("output_uri"):
        check_upload("logger.clearml.output_uri", opts["output_uri"], None)
    destination = model_destination(opts)
    return Session.get_files_server_host() if destination is True else destination


def model_destination(opts: Mapping) -> str | bool | None:
    """Where an online run uploads its registered checkpoints: ``output_uri``, else (``None``)
    the server's file server (``True`` to ClearML); nowhere with ``upload_models: false``
    (registered by their local path only). An offline run keeps them in its session."""
    from lightdet import outputs  # the write policy only where a destination is decided
    from lightdet.guard.writes import local_upload_folder

    if not opts.get("upload_models", True):
        return None
    uri = opts.get("output_uri")
    if uri and (folder := local_upload_folder(uri)) is not None:
        outputs.mark(folder, "clearml models")  # checked by the write policy: free or ours
    return uri or True


if __name__ == "__main__":  # `make clearml-import SESSION=...`
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m lightdet.tracking.server <session folder or .zip>")
    print("imported as task", import_session(sys.argv[1]))
