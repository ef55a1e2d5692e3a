"""Docker files, checked statically: no Docker engine runs here (CONVENTIONS, environment)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_compose_brings_up_the_documented_clearml_services_and_an_agent():
    services = COMPOSE["services"]
    assert {
        "apiserver",
        "webserver",
        "fileserver",
        "async_delete",
        "elasticsearch",
        "mongo",
        "redis",
        "agent",
    } <= set(services)
    ports = {name: s.get("ports", []) for name, s in services.items()}
    assert ports["apiserver"] == ["8008:8008"] and ports["webserver"] == ["8080:80"]
    assert ports["fileserver"] == ["8081:8081"]
    for name in ("apiserver", "webserver", "fileserver", "async_delete"):
        assert services[name]["image"].startswith("allegroai/clearml:")
    assert services["elasticsearch"]["image"].startswith(
        "docker.elastic.co/elasticsearch/elasticsearch:"
    )
    assert services["mongo"]["image"].startswith("mongo:") and services["redis"][
        "image"
    ].startswith("redis:")
    for name in (
        "elasticsearch",
        "mongo",
        "redis",
        "fileserver",
        "apiserver",
    ):  # state survives restarts
        assert services[name]["volumes"], name
    backend = services["apiserver"]["environment"]
    assert (
        backend["CLEARML_MONGODB_SERVICE_HOST"] == "mongo"
        and backend["CLEARML_REDIS_SERVICE_HOST"] == "redis"
    )


def test_agent_has_gpus_reaches_the_server_and_runs_the_training_image():
    agent = COMPOSE["services"]["agent"]
    (device,) = agent["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert agent["environment"]["CLEARML_API_HOST"] == "http://apiserver:8008"
    assert agent["build"]["dockerfile"] == "docker/Dockerfile"
    assert agent["command"][:2] == ["clearml-agent", "daemon"] and "--queue" in agent["command"]
    assert "apiserver" in agent["depends_on"]


def test_dockerfile_uses_a_cuda_runtime_and_installs_like_the_readme():
    assert re.search(r"^FROM nvidia/cuda:[\d.]+-cudnn-runtime-", DOCKERFILE, re.M)
    readme = (ROOT / "README.md").read_text()
    assert "make install" in readme  # the README's set-up command ...
    assert re.search(r"^RUN make install", DOCKERFILE, re.M)  # ... is the image's install step
    assert "clearml-agent" in DOCKERFILE  # the compose agent runs in this image
    makefile = (ROOT / "Makefile").read_text()
    assert "docker/Dockerfile" in makefile and "docker/docker-compose.yml" in makefile
