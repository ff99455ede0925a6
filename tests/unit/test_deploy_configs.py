"""Deployment configs stay valid and agree with each other.

* ``infra/docker-compose.yml``: the compose-spec JSON schema (``check-jsonschema``'s
  vendored ``vendor.compose-spec``), then cross-references: the job's TOML
  (``infra/compose/ticktape.toml``, loaded by ``ticktape.flows.config``) names the compose services
  and their ports, Prometheus scrapes the job service, Grafana's datasources name the
  services, secrets come only from ``infra/.env`` through ``environment:``, every host port
  is bound to 127.0.0.1.
* ``infra/Dockerfile``: static checks (base image, ``pip install .[all]``, non-root user,
  the command the compose file and the README run).
* ``infra/k8s/``: the Kubernetes JSON schemas bundled with ``kubernetes-validate`` (strict:
  unknown fields fail), then names, labels, selectors, the headless Service in the cluster
  addresses, replicas == processes, and the pod entrypoint run under ``sh`` as the kubelet
  would (``$(VAR)`` expansion included).

Prometheus and Grafana files (``infra/prometheus/``, ``infra/grafana/``) are checked when
they exist; the compose side of those mounts is checked always.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from ticktape.connectors.kafka.config import env_settings
from ticktape.flows.config import Config, load_config
from ticktape.sinks.questdb.config import QuestDBConfig, parse_conf, resolve_conf

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
COMPOSE_TOML = INFRA / "compose" / "ticktape.toml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = INFRA / "Dockerfile"
DOCKERIGNORE = INFRA / "Dockerfile.dockerignore"
PROMETHEUS = INFRA / "prometheus"
GRAFANA = INFRA / "grafana"
K8S = INFRA / "k8s"

CONFIG_PATH = "/etc/ticktape/ticktape.toml"
RECOVERY_DIR = "/var/lib/ticktape/recovery"
STATE_DIR = "/var/lib/ticktape"
ONE_SHOT = {"kafka-init", "questdb-init", "minio-init"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY(_ID)?$|AUTH|TOKEN", re.IGNORECASE)
SECRET_KEY = re.compile(r"password|secret|token|access_key|credential", re.IGNORECASE)
#: CRDs allowed in infra/k8s (no bundled schema): checked structurally below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


# -- helpers ----------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves `<<: *anchor`
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


@cache
def compose_cfg() -> Config:
    return load_config(COMPOSE_TOML, env={})  # a valid ticktape config: unknown keys fail


def job_service() -> tuple[str, dict[str, Any]]:
    """The compose service running ``ticktape run``."""
    found = [(n, s) for n, s in services().items() if s.get("command", [None])[0] == "run"]
    assert len(found) == 1, f"expected one service running `ticktape run`, got {[n for n, _ in found]}"
    return found[0]


def host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` or a URL -> (host, port)."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    port = parts.port or default_port
    assert parts.hostname, f"expected host:port in {text!r}"
    assert port, f"expected host:port in {text!r}"
    return parts.hostname, port


def published(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port, short or long syntax."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((str(entry.get("host_ip", "")), int(entry.get("published", 0)), int(entry["target"])))
            continue
        pieces = str(entry).split("/")[0].split(":")
        ip = pieces[0] if len(pieces) == 3 else ""
        out.append((ip, int(pieces[-2]) if len(pieces) > 1 else 0, int(pieces[-1])))
    return out


def container_ports(name: str) -> set[int]:
    service = services()[name]
    return {p[2] for p in published(service)} | {int(str(p).split("/")[0]) for p in service.get("expose", [])}


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume entry."""
    out = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"use the short volume syntax: {entry!r}"
        source, target = entry.split(":")[:2]
        out.append((source, target))
    return out


def is_named_volume(source: str) -> bool:
    return not source.startswith((".", "/", "~")) and "/" not in source


def mount_source(service: Mapping[str, Any], target: str) -> str:
    """The source mounted at (or above) container path ``target``."""
    best = ""
    found = None
    for source, mounted in mounts(service):
        if PurePosixPath(target).is_relative_to(mounted) and len(mounted) > len(best):
            best, found = mounted, source
    assert found is not None, f"nothing is mounted at {target}"
    return found


_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def compose_variables(node: Any) -> Iterator[tuple[str, str]]:
    """(name, operator) of every ``$NAME``/``${NAME}``/``${NAME:-x}``/``${NAME:?x}`` in the
    keys and values of ``node`` (``$$`` is a literal ``$``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from compose_variables(key)
            yield from compose_variables(value)
    elif isinstance(node, list):
        for item in node:
            yield from compose_variables(item)
    elif isinstance(node, str):
        for match in _COMPOSE_VAR.finditer(node):
            if match.group(1):
                yield match.group(1), match.group(2) or ""
            elif match.group(4):
                yield match.group(4), ""


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with compose's variable interpolation applied (``$$`` -> ``$``); a missing
    ``${NAME:?message}`` fails the test as ``docker compose config`` would fail."""
    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1) or match.group(4), match.group(2) or "", match.group(3)
        value = env.get(name)
        if operator.startswith(":") and not value:
            value = None
        if value is None and operator.endswith("?"):
            pytest.fail(f"compose would refuse to start: {name}: {argument}")
        return value if value is not None else (argument if operator.endswith("-") else "")

    return _COMPOSE_VAR.sub(substitute, node)


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{ENV_EXAMPLE.name}: expected KEY=value, got {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def walk_keys(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}".lstrip(".")
            yield from walk_keys(value, f"{path}.{key}")


def command_list(service: Mapping[str, Any], key: str) -> list[str]:
    value = service.get(key, [])
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"expected {flag} in {args}"
    return args[args.index(flag) + 1]


def load_yaml_files(pattern: str, base: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, yaml.safe_load(p.read_text())) for p in sorted(base.glob(pattern))]


# -- docker-compose: schema --------------------------------------------------------------


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_compose_file_matches_the_compose_spec_schema():
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_with_the_example_environment_interpolates_and_validates(tmp_path):
    resolved = interpolate(compose(), env_example())
    assert "${" not in yaml.safe_dump(resolved)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(resolved))
    result = _check_jsonschema(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert resolved["services"]["ticktape"]["environment"]["TICKTAPE_REDIS_PASSWORD"] == "change-me-redis"


def test_the_compose_schema_check_rejects_a_broken_file(tmp_path):
    data = yaml.safe_load(COMPOSE.read_text())
    data["services"]["redis"]["healthcheck"]["test"] = 42  # a string or a list
    data["services"]["redis"]["restart_policy"] = "always"  # not a compose key
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    result = _check_jsonschema(broken)
    assert result.returncode != 0
    assert "restart_policy" in result.stdout, result.stdout
    assert "test: 42" in result.stdout, result.stdout


# -- docker-compose: the stack -----------------------------------------------------------


def test_compose_has_the_production_stack():
    assert {
        "kafka", "kafka-init", "questdb", "questdb-init", "minio", "minio-init", "redis",
        "prometheus", "grafana", "ticktape", "producer",
    } <= set(services())  # fmt: skip
    assert job_service()[0] == "ticktape"


def test_every_published_port_is_bound_to_loopback():
    seen: dict[int, str] = {}
    for name, service in services().items():
        for ip, port, _ in published(service):
            assert ip == "127.0.0.1", f"{name}: host port {port} must be bound to 127.0.0.1, got {ip!r}"
            assert port, f"{name}: publish a fixed host port"
            assert port not in seen, f"host port {port} published by {seen[port]} and {name}"
            seen[port] = name


def test_services_have_healthchecks_named_volumes_and_existing_dependencies():
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, service in services().items():
        one_shot = service.get("restart") == "no"
        assert one_shot == (name in ONE_SHOT or name == "producer"), f"{name}: restart policy"
        if not one_shot:
            assert service.get("restart") == "unless-stopped", name
            assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        for source, _ in mounts(service):
            if is_named_volume(source):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
            else:
                assert source.startswith("./"), f"{name}: bind mounts are relative to infra/: {source}"
                if not source.startswith(("./prometheus", "./grafana")):  # written elsewhere
                    assert (INFRA / source).exists(), f"{name}: {source} does not exist"
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services(), f"{name} depends on unknown service {dependency}"
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec["condition"] == wanted, f"{name} -> {dependency}"
    assert used == declared, f"declared but unused volumes: {declared - used}"
    for name in ("ticktape", "questdb", "kafka", "minio", "redis", "prometheus", "grafana"):
        assert any(is_named_volume(s) for s, _ in mounts(services()[name])), (
            f"{name}: state on a named volume"
        )


def test_job_image_is_built_from_the_dockerfile_by_every_service_that_runs_it():
    for name in ("ticktape", "questdb-init", "producer"):
        service = services()[name]
        assert service["image"] == "ticktape:local", name
        build = service["build"]
        assert (INFRA / build["context"]).resolve() == ROOT, name
        assert (INFRA / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert mount_source(service, CONFIG_PATH) == "./compose/ticktape.toml", name


def test_job_config_is_valid_and_points_at_the_compose_services():
    cfg = compose_cfg()
    name, job = job_service()
    assert job["depends_on"].keys() >= {"kafka-init", "questdb-init", "minio-init", "redis"}

    # Kafka (Redpanda): in-network listener kafka:9092, source topic created by kafka-init.
    source = cfg.source.kafka
    assert cfg.source.kind == "kafka"
    assert source.bootstrap_servers == "kafka:9092" == cfg.outputs.kafka.bootstrap_servers
    assert cfg.outputs.kafka.enabled
    kafka = command_list(services()["kafka"], "command")
    assert "--kafka-addr=internal://0.0.0.0:9092,external://0.0.0.0:19092" in kafka
    assert "--advertise-kafka-addr=internal://kafka:9092,external://127.0.0.1:19092" in kafka
    assert ("127.0.0.1", 19092, 19092) in published(services()["kafka"])
    init = " ".join(command_list(services()["kafka-init"], "command"))
    assert f"rpk topic create {source.topic} " in init
    assert "brokers=kafka:9092" in init
    assert source.topic == "ticks"
    assert source.format == "generic"
    producer = command_list(services()["producer"], "entrypoint")
    assert producer[:4] == ["tini", "--", "ticktape", "produce"]
    assert option(producer, "--topic") == source.topic
    assert option(producer, "-c") == CONFIG_PATH

    # QuestDB: ILP over HTTP on questdb:9000 (REST too), PG wire on 8812.
    questdb = cfg.outputs.questdb
    assert questdb.enabled
    schema, params = parse_conf(questdb.conf, "conf")
    assert (schema, host_port(params["addr"])) == ("http", ("questdb", 9000))
    assert {9000, 8812} <= container_ports("questdb")
    health = " ".join(services()["questdb"]["healthcheck"]["test"])
    assert {int(h, 16) for h in re.findall(r":([0-9A-F]{4}) ", health)} == {9000, 8812}
    qinit = command_list(services()["questdb-init"], "command")
    assert qinit[:2] == ["questdb", "init"]
    assert option(qinit, "-c") == CONFIG_PATH

    # Redis cache.
    assert cfg.cache.backend == "redis"
    assert host_port(cfg.cache.redis.url, 6379) == ("redis", 6379)
    assert 6379 in container_ports("redis")

    # Archive on MinIO, in the bucket minio-init creates and grants the job.
    archive = cfg.archive
    assert archive.enabled
    assert archive.s3 is not None
    bucket = urlsplit(archive.store).netloc
    assert archive.store.startswith("s3://")
    assert bucket == archive.s3.bucket
    assert host_port(archive.s3.endpoint_url or "") == ("minio", 9000)
    assert 9000 in container_ports("minio")
    minio_init = "\n".join(command_list(services()["minio-init"], "command"))
    assert "mc alias set local http://minio:9000 " in minio_init
    assert f"mc mb --ignore-existing local/{bucket}\n" in minio_init
    assert f"arn:aws:s3:::{bucket}/*" in minio_init

    # Metrics: served on all interfaces of the container, published, health-checked.
    assert cfg.metrics.enabled
    assert cfg.metrics.host == "0.0.0.0"
    port = cfg.metrics.port
    assert ("127.0.0.1", port, port) in published(job)
    assert f"http://127.0.0.1:{port}/metrics" in " ".join(job["healthcheck"]["test"])

    # Config, recovery and data locations.
    command = command_list(job, "command")
    assert command == ["run", "-c", CONFIG_PATH, "-r", RECOVERY_DIR], name
    for path in (RECOVERY_DIR, cfg.run.data_dir):
        assert is_named_volume(mount_source(job, path)), f"{path} must be on a named volume"


def test_secrets_come_only_from_the_environment():
    # Not in the TOML: no secret-looking key anywhere (the loader refuses the known ones).
    raw = tomllib.loads(COMPOSE_TOML.read_text())
    assert not [k for k in walk_keys(raw) if SECRET_KEY.search(k.rsplit(".", 1)[-1])]
    # In compose: only as ${VAR} from infra/.env, never a literal or a default.
    example = env_example()
    for name, service in services().items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            if SECRET_NAME.search(key):
                match = re.fullmatch(r"\$\{([A-Z0-9_]+):\?[^}]*\}", str(value))
                assert match, f"{name}.{key}: expected ${{VAR:?message}}, got {value!r}"
    text = COMPOSE.read_text()
    assert "change-me" not in text, f"a placeholder of {ENV_EXAMPLE.name} was pasted into the compose file"
    assert all("change-me" in v for k, v in example.items() if "PASSWORD" in k or k.endswith("SECRET_KEY"))
    # .env.example defines exactly the variables the compose file uses.
    used = dict(compose_variables(compose()))
    assert set(used) == set(example), set(used) ^ set(example)
    # The job gets what its code reads.
    _, job = job_service()
    assert {"TICKTAPE_REDIS_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(
        job["environment"]
    )
    assert "REDISCLI_AUTH" in services()["redis"]["environment"]


def test_prometheus_mount_and_scrape_targets_match_the_job_service():
    prometheus = services()["prometheus"]
    config_flag = next(a for a in command_list(prometheus, "command") if a.startswith("--config.file="))
    config_path = PurePosixPath(config_flag.split("=", 1)[1])
    assert mount_source(prometheus, str(config_path.parent)) == "./prometheus"
    if not PROMETHEUS.is_dir():  # written by the Prometheus/Grafana work; compose side only
        return
    config_file = PROMETHEUS / config_path.name
    assert config_file.is_file(), f"compose runs Prometheus with {config_path}: no {config_file}"
    config = yaml.safe_load(config_file.read_text())
    targets = {
        target
        for job in config.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    }
    name, _ = job_service()
    wanted = f"{name}:{compose_cfg().metrics.port}"
    assert wanted in targets, f"{config_file.relative_to(ROOT)} does not scrape {wanted}: {sorted(targets)}"
    for pattern in config.get("rule_files", []):
        local = PurePosixPath(pattern)
        assert not local.is_absolute() or local.is_relative_to(config_path.parent), pattern
        relative = local.relative_to(config_path.parent) if local.is_absolute() else local
        assert list(PROMETHEUS.glob(str(relative))), f"rule_files {pattern}: no file in infra/prometheus"


def test_grafana_provisioning_matches_the_compose_services():
    grafana = services()["grafana"]
    assert mount_source(grafana, "/etc/grafana/provisioning") == "./grafana/provisioning"
    dashboards_target = next(t for s, t in mounts(grafana) if s == "./grafana/dashboards")
    for path, doc in load_yaml_files("provisioning/datasources/*.y*ml", GRAFANA):
        for variable, _ in compose_variables(doc):  # Grafana expands $VAR / ${VAR} alike
            assert variable in grafana["environment"], f"{path.name} reads ${variable}: not in grafana's env"
        for source in doc.get("datasources", []):
            if not source.get("url"):
                continue
            host, port = host_port(source["url"])
            assert host in services(), f"{path.name}: datasource {source['name']} -> unknown service {host}"
            assert port in container_ports(host), f"{path.name}: {source['name']} -> {host}:{port}"
            if host == "questdb" and port == 8812 and source.get("user"):
                assert source["user"] == services()["questdb"]["environment"]["QDB_PG_USER"], source["name"]
    for path, doc in load_yaml_files("provisioning/dashboards/*.y*ml", GRAFANA):
        for provider in doc.get("providers", []):
            where = PurePosixPath(provider["options"]["path"])
            assert where.is_relative_to(dashboards_target), f"{path.name}: {where} is not mounted"


# -- Dockerfile --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_installs_the_package_and_runs_as_non_root():
    instructions = dockerfile_instructions()
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert stages
    assert all(s.split()[0] == "python:3.11-slim" for s in stages), stages
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert re.search(r"pip install \"?'?\.\[all\]", runs), "expected pip install .[all]"
    users = [rest for word, rest in instructions if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0"), users
    uid = users[-1].split(":")[0]
    assert f"--uid {uid}" in runs
    assert f"chown -R {uid}:" in runs
    final_stage = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    assert [w for w, _ in final_stage].index("USER") > max(
        i for i, (w, _) in enumerate(final_stage) if w in ("RUN", "COPY")
    ), "USER must come after the last RUN/COPY"
    exec_form = {w: yaml.safe_load(r) for w, r in instructions if w in ("ENTRYPOINT", "CMD")}
    assert exec_form["ENTRYPOINT"] == ["tini", "--", "ticktape"]
    assert exec_form["CMD"] == ["run", "-c", CONFIG_PATH, "-r", RECOVERY_DIR]
    assert exec_form["CMD"] == command_list(job_service()[1], "command")
    assert f"mkdir -p {STATE_DIR}" in runs
    assert f"HOME={STATE_DIR}" in DOCKERFILE.read_text()


def test_dockerfile_copies_every_package_and_the_context_keeps_secrets_out():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copies = [
        rest.split()[:-1]
        for word, rest in dockerfile_instructions()
        if word == "COPY" and "--from" not in rest
    ]
    sources = {s.rstrip("/") for group in copies for s in group}
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= sources, sources
    for source in sources:
        assert (ROOT / source).exists(), source
    ignore = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    assert ignore[0] == "*", "start from nothing and re-include what the build needs"
    assert {f"!{s}" for s in sources} <= {line.rstrip("/") for line in ignore}
    assert {"infra/.env", "**/.env"} <= set(ignore)


# -- Kubernetes --------------------------------------------------------------------------


@cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path.name
            assert doc.get("kind"), path.name
            assert doc.get("apiVersion"), path.name
            docs.append((path.name, doc))
    return tuple(docs)


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for _, d in k8s_docs() if d["kind"] == kind and name in (None, d.get("metadata", {}).get("name"))
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def kustomization() -> dict[str, Any]:
    return k8s("Kustomization")


def k8s_versions() -> list[str]:
    versions = sorted(
        set(kubernetes_validate.utils.all_versions()), key=lambda v: tuple(map(int, v.split(".")))
    )
    supported = [v for v in versions if tuple(map(int, v.split("."))) >= (1, 29)]
    return sorted({supported[0], versions[-1]})


def test_k8s_manifests_validate_against_the_kubernetes_schemas():
    checked = set()
    for file, doc in k8s_docs():
        if doc["kind"] == "Kustomization":
            assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
            continue
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            assert file.endswith(".example.yaml"), f"{file}: CRDs only in *.example.yaml"
            continue
        for version in k8s_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{file} ({doc['kind']}) against Kubernetes {version}: {exc}")
        checked.add(doc["kind"])
    assert {"Namespace", "ConfigMap", "Service", "StatefulSet", "Secret"} <= checked


def test_kustomization_lists_every_manifest_but_the_examples():
    kust = kustomization()
    listed = kust["resources"]
    for resource in listed:
        assert (K8S / resource).is_file(), resource
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == {m for m in manifests if not m.endswith(".example.yaml")}
    assert kust["namespace"] == k8s("Namespace")["metadata"]["name"]
    images = {i["name"] for i in kust["images"]}
    pod = k8s("StatefulSet")["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"] + pod["initContainers"]} == images


def cluster_addresses(sts: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = container["env"]
    return env, next(e["value"] for e in env if e["name"] == "TICKTAPE_ADDRESSES")


def test_statefulset_is_a_bytewax_cluster_addressed_through_the_headless_service():
    sts = k8s("StatefulSet")
    namespace = kustomization()["namespace"]
    spec = sts["spec"]
    headless = k8s("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True  # peers resolve before ready
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"]["type"] == "OnDelete"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    for service in (d for _, d in k8s_docs() if d["kind"] == "Service"):
        assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]["name"]
    container = spec["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    cluster_port = next(p for p in headless["spec"]["ports"] if p["name"] == "cluster")
    assert cluster_port["targetPort"] == "cluster"
    assert cluster_port["port"] == ports["cluster"]

    env, addresses = cluster_addresses(sts)
    names = [e["name"] for e in env]
    assert names.index("POD_NAMESPACE") < names.index("TICKTAPE_ADDRESSES")  # $(VAR) order
    assert env[names.index("POD_NAMESPACE")]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    expanded = k8s_expand(addresses, {"POD_NAMESPACE": namespace}).split(",")
    assert len(expanded) == spec["replicas"], "replicas must equal the processes in TICKTAPE_ADDRESSES"
    name, service = sts["metadata"]["name"], headless["metadata"]["name"]
    assert expanded == [
        f"{name}-{i}.{service}.{namespace}.svc.cluster.local:{ports['cluster']}"
        for i in range(spec["replicas"])
    ]


def test_statefulset_storage_config_probes_and_security():
    sts = k8s("StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounted[STATE_DIR] in claims  # recovery and data dir on the PVC
    assert volumes[mounted["/etc/ticktape"]]["configMap"]["name"] == k8s("ConfigMap")["metadata"]["name"]
    assert "ticktape.toml" in k8s("ConfigMap")["data"]
    assert "emptyDir" in volumes[mounted["/tmp"]]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert pod["enableServiceLinks"] is False  # no FOO_PORT variables in the environment
    uid = int(next(r for w, r in dockerfile_instructions() if w == "USER").split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    for each in pod["containers"] + pod["initContainers"]:
        assert each["securityContext"]["readOnlyRootFilesystem"] is True, each["name"]
        assert each["envFrom"] == [{"secretRef": {"name": "ticktape-secrets"}}], each["name"]
    init = pod["initContainers"][0]
    assert init["command"][:3] == ["ticktape", "questdb", "init"]
    assert option(init["command"], "-c") == CONFIG_PATH
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    metrics = k8s("Service", "ticktape-metrics")["spec"]["ports"][0]
    assert (metrics["name"], metrics["targetPort"], metrics["port"]) == (
        "metrics",
        "metrics",
        ports["metrics"],
    )


def k8s_cfg(tmp_path: Path, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "ticktape.toml"
    path.write_text(k8s("ConfigMap")["data"]["ticktape.toml"])
    return load_config(path, env=env or {})


def test_k8s_config_is_valid_and_takes_secrets_from_the_secret(tmp_path):
    cfg = k8s_cfg(tmp_path)
    raw = tomllib.loads(k8s("ConfigMap")["data"]["ticktape.toml"])
    assert not [k for k in walk_keys(raw) if SECRET_KEY.search(k.rsplit(".", 1)[-1])]
    assert cfg.metrics.enabled
    assert cfg.metrics.host == "0.0.0.0"
    assert PurePosixPath(cfg.run.data_dir).is_relative_to(STATE_DIR)
    assert cfg.run.workers == 1
    assert cfg.outputs.questdb.enabled
    assert not cfg.outputs.questdb.conf
    secret = k8s("Secret", "ticktape-secrets")
    assert "secret.example.yaml" not in kustomization()["resources"]
    values = secret["stringData"]
    assert {
        "TICKTAPE_REDIS_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "QDB_CLIENT_CONF",
        "TICKTAPE_KAFKA_SASL_USERNAME", "TICKTAPE_KAFKA_SASL_PASSWORD",
    } <= set(values)  # fmt: skip
    assert all("change-me" in v for k, v in values.items() if SECRET_NAME.search(k))  # placeholders only
    resolved = resolve_conf(QuestDBConfig(enabled=True), env=values)
    assert resolved.source == "QDB_CLIENT_CONF"
    assert resolved.is_http
    assert env_settings(values)["sasl.password"] == values["TICKTAPE_KAFKA_SASL_PASSWORD"]


def test_servicemonitor_example_selects_the_metrics_service():
    monitor = k8s("ServiceMonitor")
    service = k8s("Service", "ticktape-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert kustomization()["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names


# -- Kubernetes: the pod entrypoint, run as the kubelet would ------------------------------


def k8s_expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of command, args and env values: ``$$`` is ``$``, ``$(NAME)``
    is NAME's value when NAME is defined (earlier in ``env``), else left as written."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(" and (end := text.find(")", i + 2)) != -1:
                name = text[i + 2 : end]
                out.append(env.get(name, text[i : end + 1]))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_k8s_expansion_helper_follows_the_kubelet_rules():
    env = {"A": "x"}
    assert k8s_expand("$(A)-$(B)-$$(A)-${A}-$((1 + 2))", env) == "x-$(B)-$(A)-${A}-$((1 + 2))"


def pod_env(sts: dict[str, Any], namespace: str, hostname: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in sts["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item:
            env[item["name"]] = k8s_expand(item["value"], env)
        elif item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace":
            env[item["name"]] = namespace
    return env | {"HOSTNAME": hostname}


def run_entrypoint(tmp_path: Path, hostname: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    sts = k8s("StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = pod_env(sts, kustomization()["namespace"], hostname)
    command = [k8s_expand(c, env) for c in container["command"] + container["args"]]
    assert command[:2] == ["tini", "--"]
    assert command[2:4] == ["/bin/sh", "-ec"]
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ticktape").write_text('#!/bin/sh\nprintf "%s\\n" "$TICKTAPE__METRICS__PORT" "$@"\n')
    (fake / "ticktape").chmod(0o755)
    run_env = env | {"PATH": f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    result = subprocess.run(command[2:], env=run_env, capture_output=True, text=True, timeout=30, check=False)
    return result, env


def test_entrypoint_runs_process_id_from_the_ordinal_with_every_pod_on_the_metrics_port(tmp_path):
    sts = k8s("StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    metrics_port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert k8s_cfg(tmp_path).metrics.port == metrics_port
    for ordinal in range(sts["spec"]["replicas"]):
        result, env = run_entrypoint(tmp_path, f"{sts['metadata']['name']}-{ordinal}")
        assert result.returncode == 0, result.stderr
        base, *args = result.stdout.splitlines()
        assert args == [
            "run", "-c", CONFIG_PATH, "-r", RECOVERY_DIR, "-i", str(ordinal), "-a", env["TICKTAPE_ADDRESSES"],
        ]  # fmt: skip
        # ticktape.flows.runner serves on [metrics] port + process id: every pod ends on metrics_port.
        cfg = k8s_cfg(tmp_path, {"TICKTAPE__METRICS__PORT": base})
        assert cfg.metrics.port + ordinal == metrics_port == int(env["TICKTAPE_METRICS_PORT"])


@pytest.mark.parametrize("suffix", ["3", "x"])
def test_entrypoint_refuses_an_ordinal_without_an_address(tmp_path, suffix):
    sts = k8s("StatefulSet")
    assert sts["spec"]["replicas"] == 3
    result, _ = run_entrypoint(tmp_path, f"{sts['metadata']['name']}-{suffix}")
    assert result.returncode == 2
    assert not result.stdout
    assert ("change replicas AND the list" if suffix == "3" else "process id") in result.stderr


def test_every_deployment_stops_the_job_with_sigterm_and_a_grace_period_for_the_drain():
    """Issue 13 item 4: the job stops gracefully on SIGTERM (what Kubernetes and compose
    send); the image, compose and the StatefulSet agree on it and leave time to drain."""
    assert dict(dockerfile_instructions()).get("STOPSIGNAL") == "SIGTERM"
    _, service = job_service()
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = service["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) >= 30
    pod = k8s("StatefulSet")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    assert container["command"][:2] == ["tini", "--"]  # PID 1 forwards the signal ...
    assert re.search(r"^\s*exec ticktape run ", container["args"][0], flags=re.MULTILINE)  # ... to the job
