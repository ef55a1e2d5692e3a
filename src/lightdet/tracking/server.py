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
                requests.get(f"{host.rstrip('/')}/{call}", timeout=timeout, headers=headers,
                             auth=auth)  # fmt: skip
            return True
        except requests.RequestException as err:
            log.info("ClearML server %s: attempt %d/%d failed at %s (%s)", host, attempt + 1,
                     tries, call, err)  # fmt: skip
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
