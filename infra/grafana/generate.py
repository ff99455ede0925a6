"""Generate the Grafana dashboards in ``infra/grafana/dashboards/`` (deterministic JSON).

::

    python -m ticktape.infra.grafana.generate           # (re)write the dashboards
    python -m ticktape.infra.grafana.generate --check   # exit 1 if a checked-in dashboard is out of date

* **Pipeline** (``ticktape-pipeline``): throughput by outcome, stage latency percentiles,
  Kafka lag and offset gaps, dead letters, dedupe/gap/stale/candle counts, sink rows,
  errors and write latency, recovery snapshots, process CPU and memory.
* **Storage** (``ticktape-storage``): archive backlog (rows, age), bytes raw/compressed,
  compression ratios, archive health; cache hits/misses/writes/evictions per type.
* **Market** (``ticktape-market``): candles of one ``$symbol`` from QuestDB (PostgreSQL
  wire), SQL against the candle table of :mod:`ticktape.sinks.questdb.ddl`.

Prometheus panels filter on the ``$job`` and ``$instance`` variables (``All`` = ``.+``).
Datasource uids match ``infra/grafana/provisioning/datasources/ticktape.yml``. Metric
names are those of ``infra/METRICS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ticktape.sinks.questdb.config import QuestDBConfig
from ticktape.sinks.questdb.ddl import CANDLE_COLUMNS

OUT_DIR = Path(__file__).parent / "dashboards"
PROMETHEUS: dict[str, str] = {"type": "prometheus", "uid": "ticktape-prometheus"}
QUESTDB: dict[str, str] = {"type": "grafana-postgresql-datasource", "uid": "ticktape-questdb"}
CANDLES = QuestDBConfig().candles_table
_SEL = 'job=~"$job",instance=~"$instance"'
_COLUMNS = {name for name, _ in CANDLE_COLUMNS}

Json = dict[str, Any]


def m(metric: str, matchers: str = "") -> str:
    """``metric{job=~"$job",instance=~"$instance"[,matchers]}``."""
    return f"{metric}{{{_SEL}{',' + matchers if matchers else ''}}}"


def rate(metric: str, window: str = "1m", matchers: str = "", fn: str = "rate") -> str:
    """``rate(metric{...}[window])`` (or ``increase`` with ``fn``)."""
    return f"{fn}({m(metric, matchers)}[{window}])"


def total(inner: str, by: str = "", agg: str = "sum") -> str:
    """``sum by (by) (inner)``, or ``sum(inner)`` without ``by``."""
    return f"{agg} by ({by}) ({inner})" if by else f"{agg}({inner})"


def quantile(q: str, metric: str, by: str, matchers: str = "", window: str = "1m") -> str:
    return f"histogram_quantile({q}, {total(rate(metric + '_bucket', window, matchers), by + ', le')})"


_LEGEND: Json = {"displayMode": "list", "placement": "bottom", "showLegend": True}


class Board:
    """Panels laid out left to right on a 24-column grid, with unique ids in order."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = self._y = self._line = 0  # cursor and the height of the current line

    def _newline(self) -> None:
        self._x, self._y, self._line = 0, self._y + self._line, 0

    def _place(self, width: int, height: int) -> Json:
        if self._x + width > 24:
            self._newline()
        pos = {"h": height, "w": width, "x": self._x, "y": self._y}
        self._x += width
        self._line = max(self._line, height)
        return pos

    def row(self, title: str) -> None:
        self._newline()
        grid = {"h": 1, "w": 24, "x": 0, "y": self._y}
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": grid})
        self._y += 1

    def add(
        self,
        kind: str,
        title: str,
        targets: list[Json],
        *,
        width: int = 12,
        height: int = 8,
        unit: str = "short",
        description: str = "",
        options: Json | None = None,
        datasource: Json = PROMETHEUS,
    ) -> None:
        self.panels.append(
            {
                "type": kind,
                "title": title,
                "description": description,
                "datasource": datasource,
                "gridPos": self._place(width, height),
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": options or {"legend": _LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
                "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
            }
        )

    def prom(self, title: str, *exprs: tuple[str, str], kind: str = "timeseries", **kwargs: Any) -> None:
        """A panel of PromQL ``(expr, legend)`` targets."""
        targets = [
            {"datasource": PROMETHEUS, "expr": e, "legendFormat": lg, "range": True} for e, lg in exprs
        ]
        self.add(kind, title, targets, **kwargs)

    def sql(
        self, title: str, sql: str, *, kind: str = "timeseries", fmt: str = "time_series", **kwargs: Any
    ) -> None:
        """A panel of one QuestDB SQL query."""
        target = {"datasource": QUESTDB, "rawSql": sql, "format": fmt, "rawQuery": True, "editorMode": "code"}
        self.add(kind, title, [target], datasource=QUESTDB, **kwargs)

    def finish(self) -> list[Json]:
        for i, panel in enumerate(self.panels, start=1):
            panel["id"] = i
        return self.panels


def _prom_variables() -> list[Json]:
    def var(name: str, query: str) -> Json:
        return {
            "name": name, "label": name, "type": "query", "datasource": PROMETHEUS,
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
            "includeAll": True, "allValue": ".+", "multi": True, "refresh": 2, "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        }  # fmt: skip

    return [
        var("job", "label_values(ticktape_run_start_time_seconds, job)"),
        var("instance", 'label_values(ticktape_run_start_time_seconds{job=~"$job"}, instance)'),
    ]


def dashboard(uid: str, title: str, description: str, panels: list[Json], variables: list[Json]) -> Json:
    return {
        "id": None, "uid": uid, "title": title, "description": description, "tags": ["ticktape"],
        "timezone": "utc", "editable": True, "graphTooltip": 1, "refresh": "10s", "schemaVersion": 39,
        "version": 1, "time": {"from": "now-1h", "to": "now"}, "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["ticktape"], "asDropdown": True, "title": "ticktape",
                   "includeVars": False, "keepTime": True}],
        "templating": {"list": variables}, "panels": panels,
    }  # fmt: skip


def pipeline() -> Json:
    b = Board()
    b.row("Throughput")
    b.prom(
        "Records read and outcome /s",
        (total(rate("ticktape_ticks_read_total")), "read"),
        (total(rate("ticktape_ticks_total"), "outcome"), "{{outcome}}"),
        unit="ops",
        description="read = accepted + rejected + duplicate per source partition (docs/architecture.md, Accounting).",
    )
    b.prom(
        "Records read /s per source partition",
        (total(rate("ticktape_ticks_read_total"), "partition"), "{{partition}}"),
        unit="ops",
    )
    b.prom("Events /s by type", (total(rate("ticktape_events_total"), "type"), "{{type}}"), unit="ops")
    b.prom(
        "Paced source: offered rate and backlog",
        (total(m("ticktape_source_offered_rate"), "partition"), "offered/s {{partition}}"),
        (total(m("ticktape_source_backlog_messages"), "partition"), "backlog {{partition}}"),
        description="Synthetic feed only: messages due but not read yet grow while the flow cannot keep up.",
    )
    b.prom(
        "In flight (read - accepted - rejected - duplicate)",
        (f"{total(m('ticktape_ticks_read_total'))} - {total(m('ticktape_ticks_total'))}", "in flight"),
        kind="stat",
        description="Near 0 at rest; a growing value means records are held up.",
    )
    b.row("Latency")
    stages = "venue_to_recv, kafka_to_recv, recv_to_proc, proc_to_sink; end to end: recv_to_sink, venue_to_sink (live)."
    for q in ("0.99", "0.95", "0.5"):
        expr = quantile(q, "ticktape_stage_latency_seconds", "stage")
        b.prom(f"Stage latency p{_pct(q)}", (expr, "{{stage}}"), unit="s", description=stages)
    end_to_end = 'stage=~"recv_to_sink|venue_to_sink"'
    b.prom(
        "End to end p50 / p95 / p99",
        *[
            (quantile(q, "ticktape_stage_latency_seconds", "stage", end_to_end), f"{{{{stage}}}} p{_pct(q)}")
            for q in ("0.5", "0.95", "0.99")
        ],
        unit="s",
    )
    b.row("Kafka")
    b.prom(
        "Consumer lag per partition",
        (total(m("ticktape_kafka_consumer_lag"), "partition"), "{{partition}}"),
        description="High watermark minus the next offset to read.",
    )
    b.prom(
        "Offset gaps and consumer errors (5m)",
        (
            total(rate("ticktape_kafka_offset_gaps_total", "5m", fn="increase"), "partition"),
            "gaps {{partition}}",
        ),
        (
            total(rate("ticktape_kafka_consumer_errors_total", "5m", fn="increase"), "partition"),
            "errors {{partition}}",
        ),
    )
    b.prom(
        "Kafka outputs: delivered /s",
        (total(rate("ticktape_kafka_delivered_total"), "sink"), "{{sink}}"),
        unit="ops",
    )
    b.prom(
        "Kafka outputs: outstanding, waits and failures",
        (total(m("ticktape_kafka_outstanding"), "sink"), "outstanding {{sink}}"),
        (
            total(rate("ticktape_kafka_producer_waits_total", "5m", fn="increase"), "sink"),
            "waits (5m) {{sink}}",
        ),
        (
            total(rate("ticktape_kafka_delivery_failures_total", "5m", fn="increase"), "sink"),
            "failed (5m) {{sink}}",
        ),
    )
    b.row("Data quality")
    b.prom(
        "Dead letters /s by code",
        (total(rate("ticktape_dead_letters_total"), "code"), "{{code}}"),
        unit="ops",
    )
    b.prom(
        "Duplicates, sequence gaps and missing trades /s",
        (total(rate("ticktape_ticks_total", matchers='outcome="duplicate"')), "duplicates"),
        (total(rate("ticktape_events_total", matchers='type="SequenceGap"')), "gaps"),
        (total(rate("ticktape_missing_trades_total")), "missing trade ids"),
        unit="ops",
    )
    b.prom(
        "Stale symbols and anomalies /s",
        (
            total(rate("ticktape_events_total", "5m", 'type=~"SymbolStale|AnomalyFlagged"'), "type"),
            "{{type}}",
        ),
        unit="ops",
    )
    b.prom(
        "Candles closed, revised, late ticks /s",
        (
            total(rate("ticktape_events_total", "1m", 'type=~"CandleClosed|CandleRevised|LateTick"'), "type"),
            "{{type}}",
        ),
        unit="ops",
    )
    b.row("Sinks")
    b.prom(
        "Rows written /s per sink", (total(rate("ticktape_sink_rows_total"), "sink"), "{{sink}}"), unit="ops"
    )
    b.prom(
        "Write latency p99 per sink",
        (quantile("0.99", "ticktape_sink_write_latency_seconds", "sink"), "{{sink}}"),
        unit="s",
    )
    b.prom(
        "Sink errors /s", (total(rate("ticktape_sink_errors_total", "5m"), "sink"), "{{sink}}"), unit="ops"
    )
    b.prom(
        "Time spent writing (s/s) per sink",
        (total(rate("ticktape_sink_write_seconds_total"), "sink"), "{{sink}}"),
        unit="percentunit",
    )
    b.row("Processes")
    b.prom(
        "Up",
        (f"up{{{_SEL}}}", "{{instance}}"),
        kind="stat",
        description="1 per process answering scrapes ([metrics] port + process id).",
    )
    b.prom("CPU (cores)", (total(rate("ticktape_process_cpu_seconds_total"), "instance"), "{{instance}}"))
    b.prom(
        "Resident memory",
        (total(m("ticktape_process_resident_memory_bytes"), "instance"), "{{instance}}"),
        unit="bytes",
    )
    b.prom(
        "Epoch snapshots /s and age of the last one",
        (total(rate("ticktape_recovery_snapshots_total"), "instance"), "snapshots/s {{instance}}"),
        (
            f"time() - {total(m('ticktape_recovery_last_snapshot_timestamp_seconds'), 'instance', 'max')}",
            "age (s) {{instance}}",
        ),
    )
    b.prom(
        "Accepted ticks /s of the [metrics] symbol_labels symbols",
        (total(rate("ticktape_symbol_ticks_total"), "symbol, venue"), "{{symbol}}@{{venue}}"),
        unit="ops",
        width=24,
        description="Empty unless [metrics] symbol_labels lists symbols (at most 100).",
    )
    return dashboard(
        "ticktape-pipeline",
        "ticktape / Pipeline",
        "Throughput, latency, lag, data quality, sinks and processes.",
        b.finish(),
        _prom_variables(),
    )


def storage() -> Json:
    b = Board()
    b.row("Archive")
    b.prom(
        "Backlog rows per partition",
        (total(m("ticktape_archive_backlog_rows"), "partition"), "{{partition}}"),
    )
    b.prom(
        "Backlog age (oldest unarchived batch)",
        (total(m("ticktape_archive_backlog_age_seconds"), "partition", "max"), "{{partition}}"),
        unit="s",
    )
    b.prom(
        "Archived bytes /s: raw vs Parquet",
        (total(rate("ticktape_archive_raw_bytes_total", "5m")), "raw (event-log bodies)"),
        (total(rate("ticktape_archive_bytes_total", "5m")), "compressed (Parquet)"),
        unit="Bps",
    )
    archive_ratio = (
        f"{total(m('ticktape_archive_raw_bytes_total'))} / {total(m('ticktape_archive_bytes_total'))}"
    )
    local_ratio = f"{total(m('ticktape_archive_local_raw_bytes'))} / {total(m('ticktape_archive_local_compressed_bytes'))}"
    b.prom(
        "Compression ratio",
        (archive_ratio, "archive (raw / Parquet)"),
        (local_ratio, "retained local bodies (raw / zstd)"),
    )
    b.prom(
        "Archived rows and objects /s",
        (total(rate("ticktape_archive_rows_total", "5m")), "rows"),
        (total(rate("ticktape_archive_objects_total", "5m")), "objects"),
        (total(rate("ticktape_archive_deleted_batches_total", "5m")), "local batches deleted"),
        unit="ops",
    )
    b.prom(
        "Archive health (1 = last pass succeeded)",
        (total(m("ticktape_archive_healthy"), "instance, partition", "min"), "{{instance}} {{partition}}"),
        kind="stat",
    )
    b.prom(
        "Archive failures, retries, verify mismatches (15m)",
        (total(rate("ticktape_archive_failures_total", "15m", fn="increase")), "failed passes"),
        (total(rate("ticktape_archive_retries_total", "15m", fn="increase")), "retried store calls"),
        (total(rate("ticktape_archive_verify_mismatches_total", "15m", fn="increase")), "verify mismatches"),
    )
    b.prom(
        "Time since the last good pass",
        (
            f"time() - {total(m('ticktape_archive_last_run_timestamp_seconds'), 'partition', 'max')}",
            "{{partition}}",
        ),
        unit="s",
    )
    b.row("Cache (embedded and Redis)")
    hits = total(rate("ticktape_cache_hits_total", "5m"), "type")
    misses = total(rate("ticktape_cache_misses_total", "5m"), "type")
    b.prom(
        "Hit ratio per type",
        (f"{hits} / ({hits} + {misses})", "{{type}}"),
        unit="percentunit",
        description="Fresh reads / all reads. No value while nothing reads the cache.",
    )
    b.prom(
        "Reads /s per type",
        (total(rate("ticktape_cache_hits_total"), "type"), "hits {{type}}"),
        (total(rate("ticktape_cache_misses_total"), "type"), "misses {{type}}"),
        unit="ops",
    )
    b.prom(
        "Writes /s per type: stored vs refused (older version)",
        (total(rate("ticktape_cache_writes_total"), "type"), "stored {{type}}"),
        (total(rate("ticktape_cache_stale_writes_total"), "type"), "refused {{type}}"),
        unit="ops",
    )
    b.prom(
        "Evictions (LRU) and expirations (TTL) /s per type",
        (total(rate("ticktape_cache_evictions_total", "5m"), "type"), "evicted {{type}}"),
        (total(rate("ticktape_cache_expirations_total", "5m"), "type"), "expired {{type}}"),
        unit="ops",
    )
    b.prom("Entries per type (embedded)", (total(m("ticktape_cache_entries"), "type"), "{{type}}"))
    b.prom(
        "Memory used (embedded)",
        (total(m("ticktape_cache_bytes"), "instance"), "{{instance}}"),
        unit="bytes",
    )
    b.prom(
        "Redis up and reconnects (15m)",
        (total(m("ticktape_cache_redis_up"), "instance", "min"), "up {{instance}}"),
        (
            total(rate("ticktape_cache_redis_reconnects_total", "15m", fn="increase"), "instance"),
            "reconnects {{instance}}",
        ),
        description="Redis backend only. Writes buffered while Redis is away: ticktape_cache_buffered{type}.",
    )
    return dashboard(
        "ticktape-storage",
        "ticktape / Storage",
        "Archive backlog, bytes and compression; cache hits, misses, writes and evictions.",
        b.finish(),
        _prom_variables(),
    )


def _pct(q: str) -> int:
    return round(float(q) * 100)


def _candles_sql(columns: str, *, extra: str = "", order: str = "ts", limit: int = 0) -> str:
    names = {c.strip().split(" AS ")[0].strip('"') for c in columns.split(",")}
    unknown = names - _COLUMNS
    if unknown:
        raise ValueError(
            f"columns {sorted(unknown)} are not in the {CANDLES} table (ticktape.sinks.questdb.ddl)"
        )
    where = (
        "symbol = '$symbol' AND venue = '$venue' AND \"interval\" = $candle_interval AND $__timeFilter(ts)"
    )
    sql = f"SELECT {columns} FROM {CANDLES} WHERE {where}{extra} ORDER BY {order}"
    return sql + (f" LIMIT {limit}" if limit else "")


def market() -> Json:
    b = Board()
    candles = {"mode": "candles+volume", "candleStyle": "candles", "colorStrategy": "open-close"}
    b.sql(
        "$symbol candles",
        _candles_sql("ts AS time, open, high, low, close, volume"),
        kind="candlestick",
        width=24,
        height=12,
        options={**candles, "includeAllFields": False, "legend": _LEGEND},
    )
    b.sql("Close and VWAP", _candles_sql("ts AS time, close, vwap"))
    b.sql("Buy and sell volume", _candles_sql("ts AS time, buy_volume, sell_volume"))
    b.sql("Trades per candle", _candles_sql("ts AS time, trades"))
    b.sql("Revised candles (revision > 0)", _candles_sql("ts AS time, revision", extra=" AND revision > 0"))
    b.sql(
        "Latest candles",
        _candles_sql(
            "ts, open, high, low, close, volume, vwap, trades, revision, ts_final", order="ts DESC", limit=100
        ),
        kind="table",
        fmt="table",
        width=24,
        options={"showHeader": True},
    )
    symbols = f"SELECT DISTINCT symbol FROM {CANDLES} ORDER BY symbol"
    venues = f"SELECT DISTINCT venue FROM {CANDLES} WHERE symbol = '$symbol' ORDER BY venue"
    intervals = (("1m", "60"), ("5m", "300"), ("1h", "3600"))
    variables: list[Json] = [
        _sql_variable("symbol", symbols),
        _sql_variable("venue", venues),
        {
            "name": "candle_interval",
            "label": "interval",
            "type": "custom",
            "query": ",".join(f"{text} : {value}" for text, value in intervals),
            "includeAll": False,
            "multi": False,
            "current": {"selected": True, "text": "1m", "value": "60"},
            "options": [{"selected": v == "60", "text": t, "value": v} for t, v in intervals],
        },
    ]
    return dashboard(
        "ticktape-market",
        "ticktape / Market",
        f"Candles of one symbol from QuestDB (table {CANDLES}: one row per window, the latest revision).",
        b.finish(),
        variables,
    )


def _sql_variable(name: str, query: str) -> Json:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": QUESTDB,
        "query": query,
        "definition": query,
        "refresh": 1,
        "sort": 1,
        "includeAll": False,
        "multi": False,
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard (sorted keys, stable across runs)."""
    boards = {"pipeline.json": pipeline(), "storage.json": storage(), "market.json": market()}
    return {name: json.dumps(board, indent=2, sort_keys=True) + "\n" for name, board in boards.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ticktape.infra.grafana.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a checked-in dashboard differs")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print(
            f"out of date (run python -m ticktape.infra.grafana.generate): {', '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
