"""ticktape.infra.observability.latency (histograms, exact percentiles over a ring) and ticktape.infra.observability.metrics (run
accounting, the Prometheus endpoint)."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ticktape.infra.observability.latency import BUCKETS_S, STAGES, LatencyBook, StageLatency
from ticktape.infra.observability.metrics import PartitionCounts, RunStats, serve_metrics
from ticktape.schemas.records import Tally

MS = 1_000_000


# -- latency: percentiles ----------------------------------------------------------------


def test_percentiles_exact_on_known_data() -> None:
    stage = StageLatency(1000)
    data = np.arange(1, 101, dtype=np.int64) * MS  # 1..100 ms
    stage.add(data)
    p = stage.percentiles()
    # "higher": the smallest sample at or above the rank, never an interpolated value.
    assert p == {
        "count": 100.0,
        "p50_ms": 51.0,
        "p95_ms": 96.0,
        "p99_ms": 100.0,
        "p999_ms": 100.0,
        "max_ms": 100.0,
    }
    for q, name in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms"), (99.9, "p999_ms")):
        assert p[name] == float(np.percentile(data, q, method="higher")) / 1e6
        assert p[name] * 1e6 in data


@given(st.lists(st.integers(0, 10**10), min_size=1, max_size=500))
def test_property_percentiles_match_numpy_and_sorted_ranks(samples: list[int]) -> None:
    stage = StageLatency(1000)
    stage.add(np.array(samples, dtype=np.int64))
    p = stage.percentiles()
    ordered = sorted(samples)
    n = len(ordered)
    for q, name in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms"), (99.9, "p999_ms")):
        expected = float(np.percentile(np.array(samples), q, method="higher"))
        assert p[name] == expected / 1e6
        rank = -(-(n - 1) * q // 100)  # ceil((n - 1) * q / 100)
        assert p[name] == pytest.approx(ordered[int(rank)] / 1e6)
    assert p["max_ms"] == max(samples) / 1e6
    assert p["count"] == n


def test_negative_latencies_count_as_zero() -> None:
    stage = StageLatency(10)
    stage.add(np.array([-5 * MS, 3 * MS], dtype=np.int64))  # clock skew between hosts
    assert stage.recent().tolist() == [0, 3 * MS]
    assert stage.total_ns == 3 * MS
    assert stage.counts[0] == 1


def test_empty_stage_has_no_percentiles() -> None:
    stage = StageLatency(10)
    stage.add(np.array([], dtype=np.int64))
    assert stage.percentiles() == {}
    assert stage.n == 0


# -- latency: ring buffer ---------------------------------------------------------------


def test_ring_buffer_wraps_and_keeps_the_last_window() -> None:
    stage = StageLatency(5)
    stage.add(np.array([1, 2, 3], dtype=np.int64))
    assert sorted(stage.recent().tolist()) == [1, 2, 3]
    stage.add(np.array([4, 5, 6, 7], dtype=np.int64))  # wraps around
    assert sorted(stage.recent().tolist()) == [3, 4, 5, 6, 7]
    stage.add(np.array(range(100, 112), dtype=np.int64))  # more than the ring at once
    assert sorted(stage.recent().tolist()) == list(range(107, 112))
    assert stage.n == 19
    assert stage.percentiles()["max_ms"] == 111 / 1e6
    assert stage.percentiles()["count"] == 19.0  # count is of everything, percentiles of the window


def test_recent_is_a_copy() -> None:
    stage = StageLatency(3)
    stage.add(np.array([1, 2], dtype=np.int64))
    snap = stage.recent()
    snap[:] = 99
    assert stage.recent().tolist() == [1, 2]


@given(st.lists(st.lists(st.integers(0, 10**6), max_size=12), max_size=30), st.integers(1, 10))
def test_property_ring_holds_exactly_the_last_window_samples(batches: list[list[int]], window: int) -> None:
    stage = StageLatency(window)
    everything: list[int] = []
    for batch in batches:
        stage.add(np.array(batch, dtype=np.int64))
        everything += batch
        assert sorted(stage.recent().tolist()) == sorted(everything[-window:] if everything else [])
    assert stage.n == len(everything)
    assert stage.total_ns == sum(everything)
    assert int(stage.counts.sum()) == len(everything)


# -- latency: histogram ------------------------------------------------------------------


def test_histogram_buckets_use_le_bounds() -> None:
    stage = StageLatency(10)
    bounds_ns = [round(b * 1e9) for b in BUCKETS_S]
    samples = [0, bounds_ns[0], bounds_ns[0] + 1, bounds_ns[5], 61 * 10**9]
    stage.add(np.array(samples, dtype=np.int64))
    counts = stage.counts.tolist()
    assert len(counts) == len(BUCKETS_S) + 1  # + the +Inf bucket
    assert counts[0] == 2  # 0 and exactly 10us are <= 10us
    assert counts[1] == 1  # 10us + 1ns
    assert counts[5] == 1  # exactly on the 6th bound
    assert counts[-1] == 1  # above 60 s
    assert sum(counts) == 5


def test_buckets_are_increasing_and_span_10us_to_60s() -> None:
    assert list(BUCKETS_S) == sorted(BUCKETS_S)
    assert (BUCKETS_S[0], BUCKETS_S[-1]) == (0.00001, 60.0)


def test_latency_book_records_differences_per_stage() -> None:
    book = LatencyBook(window=100)
    assert set(book.stages) == set(STAGES)
    book.record("recv_to_proc", [10 * MS, 20 * MS], [9 * MS, 15 * MS])
    book.record("recv_to_proc", [], [])
    book.record_since("proc_to_sink", 100 * MS, np.array([99 * MS, 90 * MS]))
    book.record_since("proc_to_sink", 100 * MS, [])
    report = book.report()
    assert set(report) == {"recv_to_proc", "proc_to_sink"}  # only stages with samples
    assert report["recv_to_proc"]["max_ms"] == 5.0
    assert report["recv_to_proc"]["p50_ms"] == 5.0
    assert report["proc_to_sink"]["count"] == 2.0
    assert sorted(book.stages["proc_to_sink"].recent().tolist()) == [MS, 10 * MS]
    with pytest.raises(KeyError):
        book.record("nope", [1], [0])


def test_latency_book_is_thread_safe() -> None:
    book = LatencyBook(window=50)
    n_threads, rounds = 8, 200

    def work() -> None:
        for i in range(rounds):
            book.record("venue_to_recv", [i + 10, i + 20], [i, i])

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stage = book.stages["venue_to_recv"]
    assert stage.n == n_threads * rounds * 2
    assert int(stage.counts.sum()) == stage.n
    assert stage.total_ns == n_threads * rounds * 30
    assert set(stage.recent().tolist()) <= {10, 20}


# -- run accounting -----------------------------------------------------------------------


def test_partition_counts_balance() -> None:
    p = PartitionCounts()
    assert p.balanced
    p.read = 10
    assert not p.balanced
    p.accepted, p.rejected, p.duplicate = 6, 3, 1
    assert p.balanced
    assert p.as_dict() == {"read": 10, "accepted": 6, "rejected": 3, "duplicate": 1}


def test_run_stats_accounting() -> None:
    stats = RunStats()
    stats.count_source("t/0", read=10, rejected=2)  # 2 dead letters at the source
    stats.count_processed({"t/0": Tally(6, 1, 1)})  # keyed step: accepted, price jumps, duplicates
    stats.count_source("t/1", read=5, rejected=0)
    stats.count_processed({"t/1": Tally(4, 0, 0)})
    acc = stats.accounting()
    assert acc["partitions"]["t/0"] == {
        "read": 10,
        "accepted": 6,
        "rejected": 3,
        "duplicate": 1,
        "balanced": True,
    }
    assert acc["partitions"]["t/1"]["balanced"] is False
    assert acc["total"] == {"read": 15, "accepted": 10, "rejected": 3, "duplicate": 1}
    assert acc["balanced"] is False
    stats.count_processed({"t/1": Tally(0, 0, 1)})
    assert stats.accounting()["balanced"] is True
    assert list(stats.accounting()["partitions"]) == ["t/0", "t/1"]
    assert RunStats().accounting() == {
        "partitions": {}, "total": {"read": 0, "accepted": 0, "rejected": 0, "duplicate": 0}, "balanced": True,
    }  # fmt: skip


def test_run_stats_counters() -> None:
    stats = RunStats()
    stats.count_dead(["BAD_PRICE", "BAD_PRICE", "TS_PAST"])
    stats.count_events(["PriceUpdated"] * 3 + ["SequenceGap"])
    stats.add_gaps(missing=7, below_window=2)
    stats.add_gaps(missing=1, below_window=0)
    stats.count_sink("cache", 100, 0.5)
    stats.count_sink("cache", 50, 0.25, failed=True)
    assert stats.dead_letters == {"BAD_PRICE": 2, "TS_PAST": 1}
    assert stats.events == {"PriceUpdated": 3, "SequenceGap": 1}
    assert (stats.missing_trades, stats.duplicates_below_window) == (8, 2)
    assert (stats.sink_writes["cache"], stats.sink_errors["cache"], stats.sink_seconds["cache"]) == (
        150,
        1,
        0.75,
    )


def test_run_stats_thread_safety() -> None:
    stats = RunStats()

    def work(k: int) -> None:
        for _ in range(500):
            stats.count_source(f"t/{k % 2}", 3, 1)
            stats.count_processed({f"t/{k % 2}": Tally(1, 0, 1)})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acc = stats.accounting()
    assert acc["total"] == {"read": 9000, "accepted": 3000, "rejected": 3000, "duplicate": 3000}
    assert acc["balanced"] is True


# -- Prometheus endpoint ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> tuple[RunStats, str]:
    """One run's statistics and what the endpoint served for them (one server per module)."""
    stats = RunStats()
    stats.count_source("trades/0", 10, 1)
    stats.count_processed({"trades/0": Tally(7, 1, 1)})
    stats.count_dead(["BAD_PRICE"])
    stats.count_events(["PriceUpdated"] * 7)
    stats.add_gaps(4, 1)
    stats.count_sink("eventlog", 8, 0.01)
    stats.latency.record("recv_to_proc", [2 * MS, 30 * MS, 70_000 * MS], [0, 0, 0])
    stop = serve_metrics(stats, "127.0.0.1", 0)
    port = stop.port  # type: ignore[attr-defined]
    try:
        assert isinstance(port, int)
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
    finally:
        stop()
    return stats, text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_endpoint_serves_the_run(served: tuple[RunStats, str]) -> None:
    _, text = served
    values = samples(text)
    assert values[("ticktape_ticks_total", (("outcome", "accepted"), ("partition", "trades/0")))] == 7
    assert values[("ticktape_ticks_total", (("outcome", "rejected"), ("partition", "trades/0")))] == 2
    assert values[("ticktape_ticks_total", (("outcome", "duplicate"), ("partition", "trades/0")))] == 1
    assert values[("ticktape_ticks_read_total", (("partition", "trades/0"),))] == 10
    assert values[("ticktape_dead_letters_total", (("code", "BAD_PRICE"),))] == 1
    assert values[("ticktape_events_total", (("type", "PriceUpdated"),))] == 7
    assert values[("ticktape_missing_trades_total", ())] == 4
    assert values[("ticktape_sink_rows_total", (("sink", "eventlog"),))] == 8
    assert values[("ticktape_sink_errors_total", (("sink", "eventlog"),))] == 0
    assert values[("ticktape_sink_write_seconds_total", (("sink", "eventlog"),))] == pytest.approx(0.01)
    assert values[("ticktape_run_start_time_seconds", ())] > 1.6e9
    # Process metrics, under the project's namespace.
    assert values[("ticktape_process_cpu_seconds_total", ())] >= 0
    assert values[("ticktape_process_resident_memory_bytes", ())] > 0
    assert ("ticktape_process_open_fds", ()) in values


def test_metrics_latency_histogram_is_cumulative(served: tuple[RunStats, str]) -> None:
    _, text = served
    assert "ticktape_stage_latency_seconds_bucket" in text
    values = samples(text)
    stage = (("stage", "recv_to_proc"),)
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in values.items()
        if name == "ticktape_stage_latency_seconds_bucket" and dict(labels)["stage"] == "recv_to_proc"
    )
    assert [b for b, _ in buckets] == [*BUCKETS_S, float("inf")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "cumulative"
    by_bound = dict(buckets)
    assert by_bound[0.001] == 0
    assert by_bound[0.0025] == 1
    assert by_bound[0.025] == 1
    assert by_bound[0.05] == 2
    assert by_bound[60.0] == 2
    assert by_bound[float("inf")] == 3
    assert values[("ticktape_stage_latency_seconds_count", stage)] == 3
    assert values[("ticktape_stage_latency_seconds_sum", stage)] == pytest.approx(70.032)
    # Stages without samples are not exported.
    assert not any(dict(labels).get("stage") == "proc_to_sink" for _, labels in values)


def test_metric_names_follow_prometheus_conventions(served: tuple[RunStats, str]) -> None:
    _, text = served
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            assert name is not None
            assert re.fullmatch(r"ticktape_[a-z0-9_]+", name.group()), f"not namespaced snake_case: {line}"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ours = {n: f for n, f in families.items() if n.startswith("ticktape_")}
    assert set(ours) == set(families)
    for name, family in ours.items():
        names = {s.name for s in family.samples}
        if family.type == "counter":
            assert not name.endswith("_total"), f"{name}: the family name is the base name"
            assert names <= {f"{name}_total", f"{name}_created"}, names
        if family.type == "histogram":
            assert names <= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        # Base units only: seconds and bytes, never milli-anything.
        assert not re.search(r"_(ms|milliseconds|millis|kb|mb)(_|$)", name), name
    counters = {n for n, f in ours.items() if f.type == "counter"}
    assert {"ticktape_ticks", "ticktape_ticks_read", "ticktape_dead_letters", "ticktape_events",
            "ticktape_missing_trades", "ticktape_sink_rows", "ticktape_sink_errors",
            "ticktape_sink_write_seconds", "ticktape_process_cpu_seconds"} <= counters  # fmt: skip
    assert ours["ticktape_run_start_time_seconds"].type == "gauge"
    assert ours["ticktape_stage_latency_seconds"].type == "histogram"
    # In the text exposition, every counter sample carries the _total suffix.
    type_lines = dict(line.split(" ")[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    for name, typ in type_lines.items():
        if typ == "counter":
            assert name.endswith("_total"), name


def test_extra_collectors_are_served() -> None:
    from prometheus_client.core import GaugeMetricFamily

    stats = RunStats()
    stats.collectors.append(
        lambda: [GaugeMetricFamily("ticktape_archive_ratio", "Compression ratio.", value=3.5)]
    )
    stop = serve_metrics(stats, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stop.port}/metrics", timeout=10) as resp:  # type: ignore[attr-defined]
            text = resp.read().decode()
    finally:
        stop()
    assert samples(text)[("ticktape_archive_ratio", ())] == 3.5
    # An empty run still serves well-formed families (no partitions yet).
    assert "# TYPE ticktape_ticks_total counter" in text


def test_stop_releases_the_port() -> None:
    stop = serve_metrics(RunStats(), "127.0.0.1", 0)
    port = stop.port  # type: ignore[attr-defined]
    stop()
    with pytest.raises(urllib.error.URLError, match=r"(?i)refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
