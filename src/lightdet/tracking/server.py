"""Whether a ClearML server is configured and answers, asked before anything waits on it.

The ClearML SDK is imported inside the functions that need it, so that deciding "offline" (and
the local search, which asks) does not cost its import.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

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
    from pathlib import Path

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

    return Task.import_offline_session(str(path))


if __name__ == "__main__":  # `make clearml-import SESSION=...`
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m lightdet.tracking.server <session folder or .zip>")
    print("imported as task", import_session(sys.argv[1]))
