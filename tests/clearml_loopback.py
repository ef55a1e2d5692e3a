"""A ClearML server on loopback for the online-path tests: the API server and the file server,
real HTTP on 127.0.0.1, speaking the subset of ClearML's REST API that the SDK uses.

It keeps what it is sent (projects, tasks with their parameters and configurations, models,
queues, event batches, uploaded files) in memory and answers as the server would, so the real
SDK (``Task.init``, reporting, model uploads, ``Task.clone``/``enqueue``, the optimizer, an
agent-style remote run) talks to it over the network. Every request is recorded
(:attr:`LoopbackClearML.calls`). :meth:`LoopbackClearML.fail` makes a given call fail (HTTP
500, an error answer, a dropped connection) or stall; :meth:`LoopbackClearML.restart` takes the
server down and brings it back on the same port with its data, as a restarted server would.

Shapes come from the SDK itself: every request body is validated against the request schema of
``clearml.backend_api.services.v2_23`` and every answer against the response schema before it
is sent (a mismatch is a 500 and is kept in :attr:`LoopbackClearML.schema_errors`, which the
tests assert empty). Simplified, and said where it is done below: queries return whole
documents (``only_fields`` is not applied), a few ``get_all`` filters are honoured (the ones
listed in ``_FILTERS``; others are recorded in :attr:`LoopbackClearML.ignored_filters`),
events are stored but only read back by the tests (the ``events.get_*`` queries used by the web
UI are not served), and there is one user and one company.
"""

from __future__ import annotations

import copy
import email.policy
import hashlib
import http.server
import importlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from typing import Any
from urllib.parse import unquote

import jsonschema
import jwt

API_VERSION = "2.23"
ACCESS_KEY = "LOOPBACKACCESSKEY0001"
SECRET_KEY = "LoopbackSecretKey-" + "s" * 30
_SERVICES = ("auth", "events", "models", "projects", "queues", "tasks", "workers")
_USER = {"id": "loopback-user", "name": "Loopback User"}
_COMPANY = "loopback-company"


def _schemas() -> dict[str, tuple[dict, dict]]:
    """``{"tasks.create": (request schema, response schema)}`` from the SDK's service modules."""
    found = {}
    for service in _SERVICES:
        module = importlib.import_module(f"clearml.backend_api.services.v2_23.{service}")
        for request, response in module.response_mapping.items():
            found[f"{request._service}.{request._action}"] = (request._schema, response._schema)
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def md5(text: str) -> str:
    """The key under which the server files a metric or variant name in ``last_metrics``."""
    return hashlib.md5(str(text).encode("utf-8")).hexdigest()


class ApiError(Exception):
    """An answer with an error code: ``result_code``/``result_subcode`` as the server sends."""

    def __init__(self, code: int, message: str, subcode: int = 0) -> None:
        super().__init__(message)
        self.code, self.subcode = code, subcode


@dataclass
class Fault:
    """What to do to the next ``times`` calls of ``call`` (every one, with ``times=None``), or
    to those made before a call of ``until`` arrives: ``"500"`` (an HTTP 500), ``"error"`` (an
    error answer, code 400), ``"drop"`` (the connection closed unanswered) or ``"stall"`` (no
    answer until the server is closed)."""

    kind: str
    times: int | None = 1
    until: str | None = None


@dataclass
class Call:
    """One request as received."""

    name: str  # "tasks.create"; "files.upload" / "files.download" on the file server
    body: Any  # the decoded JSON body (a list for event batches); uploads: the stored path
    headers: dict[str, str]
    raw: bytes
    at: float = field(default_factory=time.monotonic)


class LoopbackClearML:
    """Start with ``LoopbackClearML()`` (or the ``clearml_server`` fixture); :attr:`env` is what
    a process needs to use it; :meth:`close` when done."""

    def __init__(self) -> None:
        self.schemas = _schemas()
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.schema_errors: list[str] = []
        self.ignored_filters: set[str] = set()
        self.faults: dict[str, list[Fault]] = {}
        self.release = threading.Event()
        self.projects: dict[str, dict] = {}
        self.tasks: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        self.queues: dict[str, dict] = {}
        self.events: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.token = jwt.encode(
            {
                "exp": int(time.time()) + 24 * 3600,
                "iat": int(time.time()),
                "identity": {"company": _COMPANY, "user": _USER["id"], "role": "user"},
                "api_version": API_VERSION,
                "server_version": "2.0.0",
                "feature_set": "basic",
            },
            "loopback-signing-key-of-32-bytes!",
        )
        self._api = self._serve(0, self._api_handler)
        self._files = self._serve(0, self._files_handler)
        self.api_host = f"http://127.0.0.1:{self._api.server_port}"
        self.files_host = f"http://127.0.0.1:{self._files.server_port}"
        self.queue("default")

    # --- what a process needs, and what a test asks -------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            "CLEARML_API_HOST": self.api_host,
            "CLEARML_WEB_HOST": self.api_host,
            "CLEARML_FILES_HOST": self.files_host,
            "CLEARML_API_ACCESS_KEY": ACCESS_KEY,
            "CLEARML_API_SECRET_KEY": SECRET_KEY,
        }

    def names(self) -> list[str]:
        """The calls received, in order."""
        with self.lock:
            return [c.name for c in self.calls]

    def fail(
        self, call: str, kind: str = "500", times: int | None = 1, until: str | None = None
    ) -> None:
        """Make calls of ``call`` fail in the way ``kind`` says: the next ``times`` of them, or
        (``until``) all of them until a call of that name arrives (see :class:`Fault`)."""
        with self.lock:
            self.faults.setdefault(call, []).append(Fault(kind, None if until else times, until))

    def restart(self, down_s: float) -> None:
        """Stop answering (connections refused) for ``down_s`` seconds, then serve again on the
        same ports with the same data, as a restarted server does."""
        api_port, files_port = self._api.server_port, self._files.server_port
        for server in (self._api, self._files):
            server.shutdown()
            server.server_close()
        time.sleep(down_s)
        self._api = self._serve(api_port, self._api_handler)
        self._files = self._serve(files_port, self._files_handler)

    def close(self) -> None:
        self.release.set()
        for server in (self._api, self._files):
            server.shutdown()
            server.server_close()

    def as_client(self, name: str, body: dict) -> dict:
        """A call made over HTTP as another client of this server does (logged in)."""
        import requests

        login = requests.get(f"{self.api_host}/auth.login", auth=(ACCESS_KEY, SECRET_KEY))
        answer = requests.post(
            f"{self.api_host}/v{API_VERSION}/{name}",
            json=body,
            headers={"Authorization": f"Bearer {login.json()['data']['token']}"},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["data"]

    def agent_pull(self, queue: str = "default") -> str | None:
        """What ``clearml-agent`` does before it starts a task's process, over the API: take
        the next task of ``queue`` (``queues.get_next_task``) and mark it started. Returns its
        id (None when the queue is empty); run the process with :meth:`agent_env`."""
        entry = self.as_client("queues.get_next_task", {"queue": self.queue(queue)}).get("entry")
        if not entry:
            return None
        self.as_client("tasks.started", {"task": entry["task"], "status_reason": "worker started"})
        return entry["task"]

    def agent_done(self, task_id: str, returncode: int) -> None:
        """The agent's last step: the task marked completed (exit 0) or failed."""
        if self.tasks[task_id]["status"] not in ("queued", "in_progress"):
            return  # the process marked it already
        if returncode == 0:
            self.as_client("tasks.completed", {"task": task_id, "force": True})
        else:
            self.as_client(
                "tasks.failed",
                {"task": task_id, "force": True, "status_reason": f"exit code {returncode}"},
            )

    @staticmethod
    def agent_env(task_id: str) -> dict[str, str]:
        """The variables ``clearml-agent`` gives the process it runs a task in."""
        return {"CLEARML_TASK_ID": task_id, "CLEARML_LOG_TASK_TO_BACKEND": "1"}

    def task_by_name(self, name: str) -> dict:
        (task,) = [t for t in self.tasks.values() if t["name"] == name]
        return task

    def hyperparams(self, task_id: str, section: str = "Hydra") -> dict[str, str]:
        """A task's parameters of one section, ``{name: value}``."""
        params = self.tasks[task_id].get("hyperparams", {}).get(section, {})
        return {name: item.get("value") for name, item in params.items()}

    def file(self, url: str) -> bytes:
        """What the file server holds at ``url`` (a URL as the SDK records it)."""
        assert url.startswith(self.files_host + "/"), url
        return self.files[unquote(url[len(self.files_host) + 1 :].split("?")[0])]

    def task_events(self, task_id: str, event_type: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e.get("task") == task_id and e["type"] == event_type]

    # --- HTTP ---------------------------------------------------------------------------------

    def _serve(self, port: int, handler: Callable) -> http.server.ThreadingHTTPServer:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                handler(outer, self, raw)

            do_GET = do_PUT = do_DELETE = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def _fault(self, name: str, request) -> bool:
        """Apply a pending fault of call ``name``; True when the request is answered by it."""
        with self.lock:
            for faults in self.faults.values():  # this call ends the faults waiting for it
                faults[:] = [f for f in faults if f.until != name]
            pending = self.faults.get(name) or []
            if not pending:
                return False
            fault = pending[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    pending.pop(0)
        if fault.kind == "stall":
            self.release.wait(600)
        if fault.kind in ("stall", "drop"):
            request.close_connection = True
            request.connection.shutdown(2)
            return True
        code = 500 if fault.kind == "500" else 400
        _send_json(request, code, _envelope(name, code, "loopback fault", 0, {}))
        return True

    @staticmethod
    def _api_handler(self: LoopbackClearML, request, raw: bytes) -> None:
        path = request.path.split("?")[0].strip("/")
        name = path.rsplit("/", 1)[-1]
        try:
            body = json.loads(raw) if raw and name != "events.add_batch" else {}
            if name == "events.add_batch":
                body = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            self.calls.append(Call(name, body, headers, raw))
        if self._fault(name, request):
            return
        try:
            if name not in ("auth.login", "debug.ping"):
                self._authorised(headers)
            data = self._dispatch(name, body, headers)
            code, message, subcode = 200, "OK", 0
        except ApiError as err:
            data, code, message, subcode = {}, err.code, str(err), err.subcode
        _send_json(request, code, _envelope(name, code, message, subcode, data))

    @staticmethod
    def _files_handler(self: LoopbackClearML, request, raw: bytes) -> None:
        path = unquote(request.path.split("?")[0])
        headers = {k.lower(): v for k, v in request.headers.items()}
        if request.command == "POST":
            files = self._parse_upload(path, raw, headers.get("content-type", ""))
            with self.lock:
                self.calls.append(Call("files.upload", sorted(files), headers, b""))
            if self._fault("files.upload", request):
                return  # failed before the files were kept
            with self.lock:
                self.files.update(files)
            _send_json(request, 200, {})
            return
        with self.lock:
            self.calls.append(Call("files.download", path, headers, b""))
            content = self.files.get(path.strip("/"))
        if content is None:
            _send_bytes(request, 404, b"not found", "text/plain")
        else:
            _send_bytes(request, 200, content, "application/octet-stream")

    def _parse_upload(self, path: str, raw: bytes, content_type: str) -> dict[str, bytes]:
        """A multipart upload (one field per file, named by its path under the URL's folder),
        as the SDK's HTTP driver sends it: ``{stored path: content}``."""
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        files = {}
        for part in message.iter_parts():
            key = part.get_param("name", header="content-disposition")
            files[f"{path.strip('/')}/{key}".strip("/")] = part.get_payload(decode=True) or b""
        return files

    def _authorised(self, headers: dict) -> None:
        if headers.get("authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized (missing or invalid token)", 20)

    def _dispatch(self, name: str, body: Any, headers: dict) -> dict:
        schemas = self.schemas.get(name)
        if name == "debug.ping":
            return {"msg": "ClearML server"}
        if name == "auth.login":
            return self._login(headers)
        handler = getattr(self, "_" + name.replace(".", "_"), None)
        if handler is None or schemas is None:
            raise ApiError(400, f"endpoint {name} is not served by the loopback fixture", 1)
        request_schema, response_schema = schemas
        if name != "events.add_batch":
            self._check(f"{name} request", body, request_schema)
        with self.lock:
            data = handler(body)
        self._check(f"{name} response", data, response_schema)
        return data

    def _check(self, what: str, value: Any, schema: dict) -> None:
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as err:
            self.schema_errors.append(f"{what}: {err.message}")
            raise ApiError(500, f"{what} does not match the SDK's schema: {err.message}") from err

    def _login(self, headers: dict) -> dict:
        import base64

        expected = base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            raise ApiError(401, "Unauthorized (invalid credentials)", 20)
        return {"token": self.token}

    # --- projects -----------------------------------------------------------------------------

    def project(self, name: str) -> str:
        for project in self.projects.values():
            if project["name"] == name:
                return project["id"]
        pid = uuid.uuid4().hex
        self.projects[pid] = {"id": pid, "name": name, "created": _now(), "user": _USER["id"]}
        return pid

    def _projects_get_all(self, body: dict) -> dict:
        found = list(self.projects.values())
        if body.get("name"):
            found = [p for p in found if re.search(body["name"], p["name"])]
        if body.get("id"):
            found = [p for p in found if p["id"] in _listed(body["id"])]
        return {"projects": copy.deepcopy(found)}

    def _projects_get_by_id(self, body: dict) -> dict:
        return {"project": copy.deepcopy(self._get(self.projects, body["project"], "project"))}

    def _projects_create(self, body: dict) -> dict:
        return {"id": self.project(body["name"])}

    # --- tasks --------------------------------------------------------------------------------

    def _get(self, table: dict, key: str, what: str) -> dict:
        if key not in table:
            raise ApiError(400, f"Invalid {what} id: {key}", 101)
        return table[key]

    def _tasks_create(self, body: dict) -> dict:
        tid = uuid.uuid4().hex
        task = {
            # the server's task document: these embedded documents exist from creation
            # (clearml-server's Task model: EmbeddedDocumentField(..., default=...))
            "hyperparams": {},
            "configuration": {},
            "execution": {},
            "output": {},
            "script": {},
            "models": {"input": [], "output": []},
            "tags": [],
            "system_tags": [],
            "runtime": {},
            **copy.deepcopy(body),
            "id": tid,
            "status": "created",
            "user": _USER["id"],
            "company": _COMPANY,
            "created": _now(),
            "last_update": _now(),
            "status_changed": _now(),
            "last_iteration": 0,
            "last_metrics": {},
        }
        task.pop("method", None)
        if task.get("output_dest"):  # as clearml-server's create: the output's destination
            task["output"] = {**task["output"], "destination": task.pop("output_dest")}
        task.pop("output_dest", None)
        self.tasks[tid] = task
        return {"id": tid}

    def _tasks_get_by_id(self, body: dict) -> dict:
        return {"task": copy.deepcopy(self._get(self.tasks, body["task"], "task"))}

    def _tasks_get_all(self, body: dict) -> dict:
        return {"tasks": self._query(self.tasks.values(), body)}

    def _query(self, documents, body: dict) -> list[dict]:
        """``*.get_all``'s filters that lightdet and the SDK use, its ordering and paging;
        the rest of the query language is not served (recorded in ``ignored_filters``)."""
        found = list(documents)
        for key, value in body.items():
            if value is None or key in _NOT_FILTERS:
                continue
            test = _FILTERS.get(key)
            if test is None:
                self.ignored_filters.add(key)
                continue
            found = [doc for doc in found if test(doc, value)]
        for order in reversed(_listed(body.get("order_by") or [])):
            field_name = order.lstrip("-")
            found.sort(
                key=lambda doc, f=field_name: _sort_key(_dotted(doc, f)),
                reverse=order.startswith("-"),
            )
        if body.get("page") is not None and body.get("page_size"):
            start = int(body["page"]) * int(body["page_size"])
            found = found[start : start + int(body["page_size"])]
        return copy.deepcopy(found)

    def _edited(self, tid: str, fields: dict) -> dict:
        task = self._get(self.tasks, tid, "task")
        task.update(copy.deepcopy(fields))
        task["last_update"] = _now()
        return {"updated": 1, "fields": copy.deepcopy(fields)}

    def _tasks_edit(self, body: dict) -> dict:
        fields = {k: v for k, v in body.items() if k not in ("task", "force", "method")}
        return self._edited(body["task"], fields)

    _tasks_update = _tasks_edit

    def _tasks_set_requirements(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        task.setdefault("script", {})["requirements"] = body.get("requirements")
        return {"updated": 1, "fields": {}}

    def _tasks_edit_hyper_params(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        params = task.setdefault("hyperparams", {})
        replace = body.get("replace_hyperparams") or "none"
        if replace == "all":
            params.clear()
        sections = {p.get("section") for p in body["hyperparams"]}
        if replace == "section":
            for section in sections:
                params.pop(section, None)
        for item in body["hyperparams"]:
            section = params.setdefault(item.get("section") or "General", {})
            section[item["name"]] = {k: v for k, v in item.items() if v is not None}
        task["last_update"] = _now()
        return {"updated": 1}

    def _tasks_delete_hyper_params(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        for item in body["hyperparams"]:
            section = task.get("hyperparams", {}).get(item["section"], {})
            if item.get("name"):
                section.pop(item["name"], None)
            else:
                task["hyperparams"].pop(item["section"], None)
        return {"deleted": 1}

    def _tasks_get_hyper_params(self, body: dict) -> dict:
        params = []
        for tid in body["tasks"]:
            task = self._get(self.tasks, tid, "task")
            items = [item for s in task.get("hyperparams", {}).values() for item in s.values()]
            params.append({"task": tid, "hyperparams": copy.deepcopy(items)})
        return {"params": params}

    def _tasks_edit_configuration(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        configuration = task.setdefault("configuration", {})
        if body.get("replace_configuration"):
            configuration.clear()
        for item in body["configuration"]:
            configuration[item["name"]] = {k: v for k, v in item.items() if v is not None}
        return {"updated": 1}

    def _tasks_get_configurations(self, body: dict) -> dict:
        found = []
        for tid in body["tasks"]:
            items = self._get(self.tasks, tid, "task").get("configuration", {})
            names = body.get("names") or list(items)
            chosen = [copy.deepcopy(items[n]) for n in names if n in items]
            found.append({"task": tid, "configuration": chosen})
        return {"configurations": found}

    def _tasks_get_configuration_names(self, body: dict) -> dict:
        return {
            "configurations": [
                {"task": t, "names": list(self._get(self.tasks, t, "task")["configuration"])}
                for t in body["tasks"]
            ]
        }

    def _status(self, body: dict, status: str, **extra) -> dict:
        fields = {"status": status, "status_changed": _now(), **extra}
        if body.get("status_reason"):
            fields["status_reason"] = body["status_reason"]
        if body.get("status_message"):
            fields["status_message"] = body["status_message"]
        return self._edited(body["task"], fields)

    def _tasks_started(self, body: dict) -> dict:
        return {**self._status(body, "in_progress", started=_now()), "started": 1}

    def _tasks_stopped(self, body: dict) -> dict:
        return self._status(body, "stopped")

    def _tasks_completed(self, body: dict) -> dict:
        return self._status(body, "completed", completed=_now())

    def _tasks_close(self, body: dict) -> dict:
        return self._status(body, "closed")

    def _tasks_failed(self, body: dict) -> dict:
        return self._status(body, "failed")

    def _tasks_mark_completed(self, body: dict) -> dict:
        return self._status(body, "completed", completed=_now())

    def _tasks_reset(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        task.update(status="created", last_metrics={}, last_iteration=0)
        return {"updated": 1, "fields": {"status": "created"}}

    def _tasks_ping(self, body: dict) -> dict:
        self._get(self.tasks, body["task"], "task")
        return {}

    def _tasks_add_or_update_artifacts(self, body: dict) -> dict:
        execution = self._get(self.tasks, body["task"], "task").setdefault("execution", {})
        artifacts = {a["key"]: a for a in execution.get("artifacts", [])}
        artifacts.update({a["key"]: copy.deepcopy(a) for a in body["artifacts"]})
        execution["artifacts"] = list(artifacts.values())
        return {"updated": 1}

    def _tasks_add_or_update_model(self, body: dict) -> dict:
        models = self._get(self.tasks, body["task"], "task").setdefault("models", {})
        kind = models.setdefault(body["type"], [])
        kind[:] = [m for m in kind if m["name"] != body["name"]]
        kind.append({"name": body["name"], "model": body["model"]})
        return {"updated": 1}

    def _tasks_clone(self, body: dict) -> dict:
        """What the dashboard's clone does: a draft copy (parameters, configuration, execution,
        input models) with no results, the edits of the request applied."""
        source = self._get(self.tasks, body["task"], "task")
        tid = uuid.uuid4().hex
        task = {
            key: copy.deepcopy(source[key])
            for key in (
                "type",
                "project",
                "hyperparams",
                "configuration",
                "execution",
                "script",
                "output",
            )
            if key in source
        }
        task["execution"] = {
            k: v for k, v in task.get("execution", {}).items() if k not in ("artifacts", "queue")
        }
        task.update(
            id=tid,
            name=body.get("new_task_name") or f"{source['name']} (Clone)",
            comment=body.get("new_task_comment") or f"Cloned from {source['id']}",
            parent=body.get("new_task_parent") or source["id"],
            tags=body.get("new_task_tags") or [],
            system_tags=body.get("new_task_system_tags") or [],
            models={
                "input": copy.deepcopy(source.get("models", {}).get("input", [])),
                "output": [],
            },
            status="created",
            user=_USER["id"],
            company=_COMPANY,
            created=_now(),
            last_update=_now(),
            status_changed=_now(),
            last_iteration=0,
            last_metrics={},
            runtime={},
        )
        if body.get("new_task_project"):
            task["project"] = body["new_task_project"]
        if body.get("new_task_hyperparams"):
            task["hyperparams"] = copy.deepcopy(body["new_task_hyperparams"])
        if body.get("new_task_configuration"):
            task["configuration"] = copy.deepcopy(body["new_task_configuration"])
        if body.get("execution_overrides"):
            task["execution"].update(copy.deepcopy(body["execution_overrides"]))
        self.tasks[tid] = task
        return {"id": tid}

    def _tasks_enqueue(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        if body.get("queue"):
            queue = self._get(self.queues, body["queue"], "queue")
        elif body.get("queue_name"):
            queue = self.queues[self.queue(body["queue_name"])]
        else:
            queue = self.queues[self.queue("default")]
        queue["entries"].append({"task": task["id"], "added": _now()})
        task.setdefault("execution", {})["queue"] = queue["id"]
        fields = self._status(body, "queued")["fields"]
        return {"queued": 1, "updated": 1, "fields": fields}

    def _tasks_dequeue(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        for queue in self.queues.values():
            queue["entries"] = [e for e in queue["entries"] if e["task"] != task["id"]]
        return {"dequeued": 1, **self._status(body, "created")}

    # --- events -------------------------------------------------------------------------------

    def _events_add_batch(self, body: list) -> dict:
        """Keep the events; a scalar updates its task's ``last_metrics`` (filed under the md5 of
        metric and variant, with last/min/max, as the server does) and ``last_iteration``."""
        for event in body:
            self.events.append(event)
            task = self.tasks.get(event.get("task"))
            if task is None or event.get("type") != "training_stats_scalar":
                continue
            metric, variant = event.get("metric", ""), event.get("variant", "")
            slot = task["last_metrics"].setdefault(md5(metric), {}).setdefault(md5(variant), {})
            value = float(event["value"])
            slot.update(
                metric=metric,
                variant=variant,
                value=value,
                min_value=min(value, slot.get("min_value", value)),
                max_value=max(value, slot.get("max_value", value)),
            )
            task["last_iteration"] = max(task.get("last_iteration", 0), int(event.get("iter", 0)))
        return {"added": len(body), "errors": 0}

    # --- models -------------------------------------------------------------------------------

    def _models_create(self, body: dict) -> dict:
        mid = uuid.uuid4().hex
        model = {**copy.deepcopy(body), "id": mid, "created": _now(), "user": _USER["id"]}
        model.pop("method", None)
        self.models[mid] = model
        return {"id": mid, "created": True}

    def _models_update_for_task(self, body: dict) -> dict:
        task = self._get(self.tasks, body["task"], "task")
        mid = body.get("override_model_id") or uuid.uuid4().hex
        model = self.models.setdefault(mid, {"id": mid, "created": _now(), "task": task["id"]})
        model.update({k: copy.deepcopy(v) for k, v in body.items() if k in _MODEL_FIELDS})
        return {"id": mid, "created": True, "updated": 1, "fields": {}}

    def _models_edit(self, body: dict) -> dict:
        model = self._get(self.models, body["model"], "model")
        fields = {k: copy.deepcopy(v) for k, v in body.items() if k in _MODEL_FIELDS}
        model.update(fields)
        return {"updated": 1, "fields": fields}

    _models_update = _models_edit

    def _models_set_ready(self, body: dict) -> dict:
        self._get(self.models, body["model"], "model")["ready"] = True
        return {"updated": 1, "published_task": None}

    def _models_get_all(self, body: dict) -> dict:
        return {"models": self._query(self.models.values(), body)}

    def _models_get_by_id(self, body: dict) -> dict:
        return {"model": copy.deepcopy(self._get(self.models, body["model"], "model"))}

    def _models_add_or_update_metadata(self, body: dict) -> dict:
        model = self._get(self.models, body["model"], "model")
        metadata = {} if body.get("replace_metadata") else model.get("metadata", {})
        metadata.update({m["key"]: copy.deepcopy(m) for m in body["metadata"]})
        model["metadata"] = metadata
        return {"updated": 1}

    # --- queues and workers ---------------------------------------------------------------------

    def queue(self, name: str) -> str:
        for queue in self.queues.values():
            if queue["name"] == name:
                return queue["id"]
        qid = uuid.uuid4().hex
        self.queues[qid] = {"id": qid, "name": name, "entries": [], "created": _now()}
        return qid

    def _queues_get_all(self, body: dict) -> dict:
        return {"queues": self._query(self.queues.values(), body)}

    def _queues_get_by_id(self, body: dict) -> dict:
        return {"queue": copy.deepcopy(self._get(self.queues, body["queue"], "queue"))}

    def _queues_get_default(self, body: dict) -> dict:
        qid = self.queue("default")
        return {"id": qid, "name": "default"}

    def _queues_create(self, body: dict) -> dict:
        return {"id": self.queue(body["name"])}

    def _queues_get_next_task(self, body: dict) -> dict:
        queue = self._get(self.queues, body["queue"], "queue")
        if not queue["entries"]:
            return {}
        entry = queue["entries"].pop(0)
        return {"entry": entry}

    def _workers_get_all(self, body: dict) -> dict:
        return {"workers": []}


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _tags_match(have: list, wanted) -> bool:
    """ClearML's tag filter: every plain tag present, every ``-tag`` absent."""
    for tag in _listed(wanted):
        if tag.startswith("__$"):
            continue  # the operators (__$all, __$or, ...) are not served: plain AND
        if tag.startswith("-") and tag[1:] in have:
            return False
        if not tag.startswith("-") and tag not in have:
            return False
    return True


_FILTERS: dict[str, Callable[[dict, Any], bool]] = {
    "id": lambda doc, v: doc["id"] in _listed(v),
    "name": lambda doc, v: re.search(v, doc.get("name", "")) is not None,
    "project": lambda doc, v: doc.get("project") in _listed(v),
    "status": lambda doc, v: doc.get("status") in _listed(v),
    "type": lambda doc, v: doc.get("type") in _listed(v),
    "parent": lambda doc, v: doc.get("parent") in _listed(v),
    "task": lambda doc, v: doc.get("task") in _listed(v),
    "tags": lambda doc, v: _tags_match(doc.get("tags", []), v),
    "system_tags": lambda doc, v: _tags_match(doc.get("system_tags", []), v),
}
# paging, ordering, projections and search switches: not filters
_NOT_FILTERS = {
    "page",
    "page_size",
    "order_by",
    "only_fields",
    "search_hidden",
    "include_subprojects",
    "shallow_search",
    "allow_public",
    "size",
    "scroll_id",
    "refresh_scroll",
    "method",
    "search_text",
}
_MODEL_FIELDS = {
    "uri",
    "name",
    "comment",
    "tags",
    "system_tags",
    "framework",
    "design",
    "labels",
    "ready",
    "project",
    "parent",
    "task",
    "iteration",
    "metadata",
}


def _dotted(doc: dict, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _sort_key(value: Any) -> tuple:
    return (value is None, value if isinstance(value, int | float) else str(value))


def _envelope(name: str, code: int, message: str, subcode: int, data: dict) -> dict:
    return {
        "meta": {
            "id": uuid.uuid4().hex,
            "trx": uuid.uuid4().hex,
            "endpoint": {
                "name": name,
                "requested_version": API_VERSION,
                "actual_version": API_VERSION,
            },
            "result_code": code,
            "result_subcode": subcode,
            "result_msg": message,
            "error_stack": None,
            "error_data": {},
        },
        "data": data,
    }


def _send_json(request, code: int, payload: dict) -> None:
    _send_bytes(request, code, json.dumps(payload).encode(), "application/json")


def _send_bytes(request, code: int, content: bytes, content_type: str) -> None:
    request.send_response(code)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(content)))
    request.end_headers()
    request.wfile.write(content)
