"""Dashboards and rules against a real Prometheus scraping real ticktape processes.

Three processes run the job live while the Debian ``prometheus`` scrapes them every second:

* job A, a 2-process cluster (``-i 0/1``): synthetic feed with every kind of fault
  (malformed, duplicate, out-of-order, gapped trades), symbols that go stale, 1 s/5 s
  candles, the embedded cache, the archive with tiny triggers (local store), Kafka outputs
  and ``[metrics] symbol_labels``. Its metrics are on ``base`` and ``base + 1``: the runner's
  port-per-process rule is checked through Prometheus' own targets;
* job B, one process: a Kafka source (consumer lag, offsets, ``kafka_to_recv``) fed by
  this test, with the Redis cache backend.

Prometheus runs with the checked-in ``infra/prometheus/prometheus.yml`` (job A as static
targets, job B through its ``file_sd`` directory) and the checked-in rule files. Every
expression of every dashboard panel and of every rule is then evaluated through
``/api/v1/query`` and must return at least one series.

Alert expressions are ``<series> <comparison> <threshold>`` and return nothing while the
system is healthy (that is their point), so for each one the left-hand side is evaluated
and must return series; the whole expression must still be a valid query.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import records
from ticktape.connectors.kafka.produce import ensure_topic, produce_messages
from ticktape.infra.devstack.http import get_json, http_get
from ticktape.infra.devstack.ports import free_port, port_is_free
from ticktape.infra.devstack.services import PrometheusServer

pytestmark = pytest.mark.integration

INFRA = Path(__file__).parents[2] / "infra"
PROM_DIR = INFRA / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
DASHBOARDS = sorted((INFRA / "grafana" / "dashboards").glob("*.json"))
#: Grafana variables with "All" selected (allValue of the generated dashboards).
ALL = {"$job": ".+", "$instance": ".+"}

JOB_A = """
[run]
mode = "live"
data_dir = "{data}"
epoch_interval = "1s"
batch_size = 200

[source]
kind = "synthetic"

[source.synthetic]
symbols = 200
rate = 400.0
duration = "10m"
partitions = 2
duplicate_rate = 0.01
out_of_order_rate = 0.02
gap_rate = 0.005
malformed_rate = 0.005

[dedupe]
stale_after = "2s"
reorder = 4
reorder_time = "1s"  # gaps within the test's minute (the default waits 5 min of event time)
window = 64

[candles]
intervals = ["1s", "5s"]
grace = "100ms"
idle_close = "1s"
revision_horizon = "2s"

[archive]
enabled = true
batch_rows = 500
batch_age = "1s"
max_age = "2s"
check_interval = "1s"
retention = "2s"
compress_after = "0s"
compress_interval = "1s"

[outputs.kafka]
enabled = true
bootstrap_servers = "{kafka}"
prices_topic = "{prefix}.prices"
candles_topic = "{prefix}.candles"
events_topic = ""
dead_letters_topic = "{prefix}.dlq"
topic_partitions = 2
partitions = 2

[metrics]
port = {port}
symbol_labels = ["S0001-USD", "S0002-USD"]
"""

JOB_B = """
[run]
mode = "live"
data_dir = "{data}"
epoch_interval = "1s"
batch_size = 200

[source]
kind = "kafka"

[source.kafka]
bootstrap_servers = "{kafka}"
topic = "{topic}"
format = "generic"

[candles]
intervals = ["1s"]
grace = "100ms"
idle_close = "1s"

[cache]
backend = "redis"

[cache.redis]
url = "{redis}"

[metrics]
port = {port}
"""


# -- expressions ---------------------------------------------------------------------------


def dashboard_targets() -> list[tuple[str, str]]:
    """``(where, PromQL)`` of every Prometheus target of every dashboard, variables at All."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "prometheus":
                    where = f"{path.stem}#{panel['id']}{target['refId']} {panel['title']!r}"
                    out.append((where, substitute(target["expr"])))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """``(where, series, label)`` of every ``label_values(series, label)`` variable."""
    out = []
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var.get("datasource", {}).get("type") != "prometheus":
                continue
            found = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"]["query"])
            assert found, var["query"]
            out.append((f"{path.stem} ${var['name']}", substitute(found[1]), found[2]))
    return out


def substitute(expr: str) -> str:
    for name, value in ALL.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return expr


def rules() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(record name, expr)`` and ``(alert name, expr)`` of the checked-in rule files."""
    records, alerts = [], []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    records.append((rule["record"], rule["expr"]))
                else:
                    alerts.append((rule["alert"], rule["expr"]))
    return records, alerts


_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def split_comparison(expr: str) -> tuple[str, str, float]:
    """``"a > 0.25"`` -> ``("a", ">", 0.25)``: the comparison outside brackets and quotes."""
    depth, quote, i = 0, "", 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            for op in _COMPARISONS:
                if expr.startswith(op, i):
                    return expr[:i].strip(), op, float(expr[i + len(op) :].strip())
        i += 1
    raise AssertionError(f"alert expression without a top-level comparison: {expr!r}")


def test_split_comparison() -> None:
    assert split_comparison('up{job="a"} == 0') == ('up{job="a"}', "==", 0.0)
    assert split_comparison('time() - max by (i) (x{a=~"b|c",d!="e"}) > 120') == (
        'time() - max by (i) (x{a=~"b|c",d!="e"})',
        ">",
        120.0,
    )
    assert split_comparison("a < 1") == ("a", "<", 1.0)


# -- the jobs --------------------------------------------------------------------------------


def _two_free_ports() -> int:
    for _ in range(50):
        base = free_port()
        if port_is_free(base + 1):
            return base
    raise AssertionError("no two consecutive free ports on 127.0.0.1")


def _start(cfg: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "ticktape.flows.cli.main", "run", "-c", str(cfg), *extra],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _ticks(stop: threading.Event) -> Iterator[tuple[bytes, bytes]]:
    """Generic JSON ticks stamped now, with a malformed message now and then."""
    rng = random.Random(5)
    ids = [0] * 20
    i = 0
    while not stop.is_set():
        i += 1
        k = rng.randrange(20)
        sym = f"K{k:02d}-USD"
        if i % 97 == 0:
            yield sym.encode(), b'{"venue": "kx", "symbol": "' + sym.encode() + b'", "price": '
            continue
        ids[k] += 1
        raw = records.trade_message(
            venue="kx", symbol=sym, price=100.0 + k + rng.random(), size=1.0, side="buy", trade_id=ids[k],
            ts_event=time.time_ns(),
        )  # fmt: skip
        yield sym.encode(), raw


@pytest.fixture
def jobs(tmp_path: Path, kafka_broker: Any, redis_server: Any) -> Iterator[dict[str, Any]]:
    """Job A (2 processes) and job B (1 process) running live; their metrics ports."""
    servers = kafka_broker.bootstrap_servers
    prefix = f"obs-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.ticks"
    ensure_topic(servers, topic, 2, {})
    for name in ("prices", "candles", "dlq"):
        ensure_topic(servers, f"{prefix}.{name}", 2, {})
    stop = threading.Event()
    feeder = threading.Thread(target=produce_messages, args=(servers, topic, _ticks(stop)), kwargs={"rate": 200.0},
                              daemon=True)  # fmt: skip
    feeder.start()

    base_a, port_b = _two_free_ports(), free_port()
    cfg_a = tmp_path / "a.toml"
    cfg_a.write_text(JOB_A.format(data=tmp_path / "a", kafka=servers, prefix=prefix, port=base_a))
    cfg_b = tmp_path / "b.toml"
    cfg_b.write_text(JOB_B.format(data=tmp_path / "b", kafka=servers, topic=topic, redis=redis_server.url,
                                  port=port_b))  # fmt: skip
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    procs = [_start(cfg_a, tmp_path / f"a{i}.log", "-i", str(i), "-a", addresses) for i in range(2)]
    procs.append(_start(cfg_b, tmp_path / "b.log"))
    try:
        yield {
            "a": [f"127.0.0.1:{base_a}", f"127.0.0.1:{base_a + 1}"],
            "b": [f"127.0.0.1:{port_b}"],
            "topic": topic,
            "procs": procs,
            "logs": [tmp_path / "a0.log", tmp_path / "a1.log", tmp_path / "b.log"],
        }
    finally:
        for proc in procs:
            _stop(proc)
        stop.set()
        feeder.join(timeout=30)


def prometheus_config(work: Path, static: list[str]) -> str:
    """The checked-in prometheus.yml with the test's targets, a 1 s interval and absolute
    paths (the rule files stay the checked-in ones)."""
    doc = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    doc["global"].update(scrape_interval="1s", evaluation_interval="1s")
    doc["rule_files"] = [str(PROM_DIR / f) for f in doc["rule_files"]]
    (job,) = [j for j in doc["scrape_configs"] if j["job_name"] == "ticktape"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": static}]
    job["file_sd_configs"] = [{"files": [str(work / "targets" / "*.json")], "refresh_interval": "1s"}]
    doc["scrape_configs"] = [job]
    return yaml.safe_dump(doc, sort_keys=False)


def _wait(what: str, check: Callable[[], Any], timeout: float, jobs: dict[str, Any]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for proc, log in zip(jobs["procs"], jobs["logs"], strict=True):
            assert proc.poll() is None, f"{log.name} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


# -- the test ----------------------------------------------------------------------------------


def test_every_dashboard_and_rule_expression_returns_series(
    jobs: dict[str, Any], prometheus_factory: Callable[..., PrometheusServer], tmp_path: Path
) -> None:
    work = tmp_path / "prom-targets"
    (work / "targets").mkdir(parents=True)
    (work / "targets" / "job-b.json").write_text(
        json.dumps([{"targets": jobs["b"], "labels": {"deployment": "b"}}])
    )
    prom = prometheus_factory(prometheus_config(work, jobs["a"]))  # promtool check config runs here
    t0 = time.monotonic()

    expected = set(jobs["a"] + jobs["b"])

    def all_up() -> bool:
        targets = {t["labels"]["instance"]: t["health"] for t in prom.active_targets()}
        return expected <= {i for i, h in targets.items() if h == "up"}

    _wait("every ticktape process to be scraped", all_up, 45, jobs)
    up = {r["metric"]["instance"]: r["value"][1] for r in prom.query('up{job="ticktape"}')}
    assert up == dict.fromkeys(expected, "1")  # job A's processes on base and base + 1
    first_scrape = time.monotonic() - t0

    # Every metric family the processes export is in the catalogue, and nothing else is.
    catalogue = (INFRA / "METRICS.md").read_text()
    exported = set()
    for target in expected:
        text = http_get(f"http://{target}/metrics").decode()
        exported |= {f.name for f in text_string_to_metric_families(text)}
    undocumented = sorted(
        n for n in exported if f"`{n}`" not in catalogue and f"`{n}_total`" not in catalogue
    )
    assert not undocumented, f"metrics missing from infra/METRICS.md: {undocumented}"

    records, alerts = rules()
    queries: dict[str, str] = dict(dashboard_targets())
    assert len(queries) == len(dashboard_targets()) > 50
    queries |= {f"record {name}": expr for name, expr in records}
    queries |= {f"record name {name}": name for name, _ in records}  # the recorded series exist
    for name, expr in alerts:
        inner, _, _ = split_comparison(expr)
        prom.query(expr)  # valid PromQL (empty while the alert does not fire)
        queries[f"alert {name} (left of the comparison)"] = inner
    for where, series, label in variable_queries():
        queries[f"variable {where} ({label})"] = series

    results: dict[str, list[dict[str, Any]]] = {}
    found_after: dict[str, float] = {}

    def evaluate() -> bool:
        for where, expr in queries.items():
            if not results.get(where):
                results[where] = prom.query(expr)
                if results[where]:
                    found_after[where] = time.monotonic() - t0
        return all(results.values())

    try:
        _wait("every expression to return series", evaluate, 60, jobs)
    finally:
        for where, expr in queries.items():
            got = results.get(where) or []
            sample = ", ".join(f"{_labels(r['metric'])}={r['value'][1]}" for r in got[:3])
            after = f"{found_after[where]:4.1f}s" if where in found_after else "never"
            print(f"{len(got):3d} series after {after}  {where}: {expr}\n             {sample}")
        print(
            f"first scrape of all targets after {first_scrape:.1f}s, all series after {time.monotonic() - t0:.1f}s"
        )
    for where, _series, label in variable_queries():
        assert all(label in r["metric"] for r in results[f"variable {where} ({label})"]), where

    # The rules are loaded and evaluate without errors.
    groups = get_json(f"{prom.url}/api/v1/rules")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {n for n, _ in records} | {n for n, _ in alerts}
    assert all(r["health"] == "ok" for r in loaded.values()), {
        n: r.get("lastError") for n, r in loaded.items()
    }

    # Spot checks (given time: a stage or symbol shows up with its first sample): the values
    # are the jobs', not just present.
    def outcomes() -> dict[str, float]:
        got = prom.query("sum by (outcome) (ticktape_ticks_total)")
        return {r["metric"]["outcome"]: float(r["value"][1]) for r in got}

    def labels(expr: str, label: str) -> set[str]:
        return {r["metric"][label] for r in prom.query(expr)}

    counts = _wait(
        "ticks of every outcome", lambda: (c := outcomes()) and min(c.values()) > 0 and c, 30, jobs
    )
    assert counts["accepted"] > 1000, counts
    stages = {
        "venue_to_recv",
        "kafka_to_recv",
        "recv_to_proc",
        "proc_to_sink",
        "recv_to_sink",
        "venue_to_sink",
    }
    p99 = "job_stage:ticktape_stage_latency_seconds:p99_1m"
    assert _wait("p99 of every stage", lambda: labels(p99, "stage") == stages, 30, jobs)
    allowed = {"S0001-USD", "S0002-USD"}  # [metrics] symbol_labels: these, nothing else
    assert _wait("both symbols", lambda: labels("ticktape_symbol_ticks_total", "symbol") == allowed, 30, jobs)
    lag = f'ticktape_kafka_consumer_lag{{instance="{jobs["b"][0]}"}}'
    assert labels(lag, "partition") == {f"{jobs['topic']}/0", f"{jobs['topic']}/1"}


def _labels(metric: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(metric.items()) if k not in ("job",)) + "}"


# -- promtool on the checked-in files ----------------------------------------------------------


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=PROM_DIR
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_promtool_check_config_and_rules() -> None:
    for config in ("prometheus.yml", "prometheus-compose.yml"):
        out = _promtool("check", "config", config)
        assert f"SUCCESS: {config} is valid prometheus config file syntax" in out
    out = _promtool("check", "rules", *(str(p.relative_to(PROM_DIR)) for p in RULE_FILES))
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_promtool_alert_unit_tests() -> None:
    out = _promtool("test", "rules", "tests/alerts_test.yml")
    assert "SUCCESS" in out
