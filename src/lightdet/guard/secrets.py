"""The last line of defence for credentials: known secret values are scrubbed wherever lightdet
records or saves text (configs, checkpoints, run folders, ClearML fields, log lines).

The first line is :mod:`lightdet.guard.interpolations`, which refuses ``${oc.env:...}``; this one
catches a secret that reached a config anyway (typed or pasted literally). Secret values are
those of environment variables whose names say so (``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*``,
``*_KEY``, ``CLEARML_API_*`` but the host), and the credentials in ``clearml.conf``. Values
shorter than :data:`MIN_LENGTH` are ignored: scrubbing a 3-character string would mangle
unrelated text, and no real credential is that short. A password in a URL's user-info
(``http://user:password@host``) in the environment is a secret value too, and every log line and
report has any URL's user-info replaced (:func:`scrub_line`), whatever it holds.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, open_dict, read_write

REDACTED = "REDACTED"
MIN_LENGTH = 8
_SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|_KEY$|_KEYS$|^CLEARML_API_"
)
_NOT_SECRET = re.compile(r"_HOST$|_URL$|_SERVER$|_PATH$|_FILE$|_DIR$")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@'\"<>]+@")
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/@:'\"<>]*:([^\s/@'\"<>]+)@")
_CONF_CREDENTIAL = re.compile(r"\b(?:access_key|secret_key)\"?\s*[:=]\s*\"?([^\"\s,}]+)")
log = logging.getLogger(__name__)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values known to this process, longest first (so none is half-replaced)."""
    env = os.environ if environ is None else environ
    found = set(_environment_secrets(_frozen(env))) | set(_clearml_conf_credentials(env))
    return sorted((v for v in found if len(v) >= MIN_LENGTH), key=len, reverse=True)


def _frozen(env) -> frozenset:
    """The environment as a hashable value. ``os.environ`` is read through its raw mapping
    (a C-speed copy, bytes on POSIX): read item by item, it decodes every name and value on
    each call, and the log filter and every refused target ask (85,000 refusals spent 47 s
    scanning it in one test)."""
    raw = getattr(env, "_data", None) if env is os.environ else None
    return frozenset((raw if isinstance(raw, dict) else env).items())


@functools.lru_cache(maxsize=16)
def _environment_secrets(raw: frozenset) -> tuple[str, ...]:
    """The secret values of one state of the environment, scanned once."""
    env = [(_text(k), _text(v)) for k, v in raw]
    found = {
        value
        for name, value in env
        if _SECRET_NAME.search(name.upper()) and not _NOT_SECRET.search(name.upper())
    }
    found |= {m.group(1) for _, value in env for m in _URL_PASSWORD.finditer(value)}
    return tuple(found)


def _text(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _clearml_conf_credentials(env) -> Iterable[str]:
    """``api.credentials`` of the ClearML configuration file, read as text: lightdet's guard
    must not import the ClearML SDK."""
    path = Path(env.get("CLEARML_CONFIG_FILE") or Path.home() / "clearml.conf")
    try:
        return _conf_credentials(path, path.stat().st_mtime_ns)
    except OSError:
        return ()


@functools.lru_cache(maxsize=8)
def _conf_credentials(path: Path, mtime_ns: int) -> tuple[str, ...]:
    """Read once per file version: the log filter asks on every record."""
    return tuple(_CONF_CREDENTIAL.findall(path.read_text(errors="replace")))


def scrub_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``REDACTED``."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def strip_userinfo(text: str) -> str:
    """``text`` with the user-info of every URL (``user:password@``) replaced."""
    return _USERINFO.sub(rf"\1{REDACTED}@", text)


def scrub_line(text: str) -> str:
    """A log line or report as it may be shown: URL user-info and secret values replaced."""
    return scrub_text(strip_userinfo(text))


def scrub(value: Any, secrets: list[str] | None = None) -> Any:
    """A plain container (or string) with the secret values replaced, at any depth."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, secrets) for v in value)
    return value


def scrub_config(
    cfg: DictConfig | ListConfig, where: str = "config", *, quiet: bool = False
) -> list[str]:
    """Replace secret values in the string leaves of ``cfg``, in place (unresolved, so what
    ClearML and Hydra record is clean too); returns the keys changed, logged unless ``quiet``."""
    secrets = secret_values()
    changed: list[str] = []
    if secrets:
        _scrub_node(cfg, "", secrets, changed)
    if changed and not quiet:
        log.warning(
            "%s: %s held a credential's value; replaced with %s",
            where,
            ", ".join(changed),
            REDACTED,
        )
    return changed


def _scrub_node(node, prefix: str, secrets: list[str], changed: list[str]) -> None:
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    with read_write(node):
        for k in keys:
            if isinstance(k, str) and (clean_key := scrub_text(k, secrets)) != k:
                with open_dict(node):  # a secret used as a key: the key renamed
                    node[clean_key] = node._get_node(k)
                    del node[k]
                changed.append(f"{prefix}.{clean_key} (a key)".lstrip("."))
                k = clean_key
            child = node._get_node(k)
            key = f"{prefix}.{k}" if isinstance(node, DictConfig) else f"{prefix}[{k}]"
            key = key.lstrip(".")
            if isinstance(child, DictConfig | ListConfig):
                if not child._is_none() and not child._is_missing():
                    _scrub_node(child, key, secrets, changed)
                continue
            value = child._value()
            if isinstance(value, str) and value != (clean := scrub_text(value, secrets)):
                node[k] = clean
                changed.append(key)


class ScrubFilter(logging.Filter):
    """Rewrites log records with secret values replaced (the message is formatted first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_line(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def install_log_scrubber() -> None:
    """Add :class:`ScrubFilter` to every handler of every logger now configured (Hydra's console
    and run-folder log file, Lightning's own handler); idempotent."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, ScrubFilter) for f in handler.filters):
                handler.addFilter(ScrubFilter())
