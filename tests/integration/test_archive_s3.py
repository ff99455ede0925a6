"""The archive against S3 (a moto server), directly and through a fault-injecting proxy:
crashes at every step, transient faults, a persistent outage, ranged reads, hostile
symbols, verification, and a whole live flow archived then read back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bytewax.testing import TestingSink, run_main
from click.testing import CliRunner

from tests.support.archive import HOUR, T0, Crash, S, archived_rows, bodies, make_log, same, tick
from ticktape.flows import wiring
from ticktape.flows.cli.backfill import backfill
from ticktape.flows.config import from_dict, load_config
from ticktape.flows.live.dataflow import build_flow
from ticktape.infra.devstack.services import MotoS3
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.durations import Duration
from ticktape.schemas.records import EventType, PriceUpdate
from ticktape.sinks.archive import format as fmt
from ticktape.sinks.archive.archiver import STEPS, Archiver, archive_all
from ticktape.sinks.archive.config import ArchiveConfig
from ticktape.sinks.archive.reader import KEY, ArchiveReader
from ticktape.sinks.archive.verify import verify
from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.log import EventLogPartition, partition_path
from ticktape.sinks.eventlog.store import EventStore
from ticktape.sinks.objectstore.s3 import S3Config, S3ObjectStore

pytestmark = pytest.mark.integration


def s3_store(bucket: str, endpoint: str, **kw: Any) -> S3ObjectStore:
    timeout = Duration.parse(kw.pop("read_timeout", "5s"))
    settings = S3Config(bucket=bucket, read_timeout=timeout, max_attempts=1)
    return S3ObjectStore(bucket, endpoint_url=endpoint, region="us-east-1", config=settings)


def cfg(**kw: Any) -> ArchiveConfig:
    from ticktape.schemas.durations import dec_hook

    base = {
        "store": "s3://unused",
        "batch_rows": 200,
        "retry": {"attempts": 6, "base": "10ms", "cap": "50ms"},
    }
    return msgspec.convert(base | kw, ArchiveConfig, dec_hook=dec_hook)


def bucket_keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def recorded_keys(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return sorted(k for (k,) in conn.execute("SELECT key FROM archive_units"))


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, list[Any]]:
    path = partition_path(tmp_path / "events", 0)
    return path, make_log(path)


@pytest.mark.parametrize("step", STEPS[:4])
def test_crash_at_every_step_against_s3(log, s3_server: MotoS3, s3_bucket, s3_client, step):
    path, events = log
    store = s3_store(s3_bucket, s3_server.endpoint_url)

    def fault(at: str, key: str) -> None:
        if at == step:
            raise Crash(key)

    with pytest.raises(Crash):
        Archiver(path, 0, store, cfg(retention="0s"), fault=fault).run_once(force=True)
    assert Archiver(path, 0, store, cfg(retention="0s")).run_once(force=True).error is None
    assert bucket_keys(s3_client, s3_bucket) == recorded_keys(path)  # one object per key, no strays
    got = archived_rows(store)
    assert sorted(got) == list(range(len(events)))
    assert all(same(got[i], e) for i, e in enumerate(events))
    assert not any(bodies(path).values())
    assert verify(store, "ticktape", [path], deep=True).ok


@pytest.mark.parametrize(
    "plan",
    [
        lambda p: p.reset(2, method="PUT"),
        lambda p: p.error(500, 2, method="PUT"),
        lambda p: p.error(503, 1, method="PUT").error(503, 1, method="HEAD"),
        lambda p: p.delay(2.0, 1, method="PUT"),
        lambda p: p.lose_response(2, method="PUT"),
    ],
    ids=["reset", "500", "503", "slow", "lost-put-response"],
)
def test_transient_faults_are_retried_without_duplicates(log, fault_proxy, s3_bucket, s3_client, plan):
    path, events = log
    store = s3_store(s3_bucket, fault_proxy.endpoint_url, read_timeout="1s")
    plan(fault_proxy)
    archiver = Archiver(path, 0, store, cfg())
    assert archiver.run_once(force=True).error is None
    assert archiver.metrics.value(0, "retries") >= 1
    assert bucket_keys(s3_client, s3_bucket) == recorded_keys(path)
    assert sorted(archived_rows(store)) == list(range(len(events)))
    assert verify(store, "ticktape", [path], deep=True).ok


def test_persistent_outage_keeps_all_data_local_and_reports_it(log, fault_proxy, s3_bucket, s3_client):
    path, events = log
    store = s3_store(s3_bucket, fault_proxy.endpoint_url)
    fault_proxy.error(503, None)
    stats = RunStats()
    archiver = Archiver(
        path, 0, store, cfg(retention="0s", retry={"attempts": 3, "base": "1ms", "cap": "5ms"}), stats
    )
    result = archiver.run_once(force=True)
    assert result.error
    assert "gave up after 3 attempts" in result.error
    assert archiver.metrics.value(0, "failures") == 1
    assert archiver.metrics.value(0, "healthy") == 0
    text = "".join(str(m) for c in stats.collectors for m in c())
    assert "ticktape_archive_failures" in text
    assert "ticktape_archive_healthy" in text
    assert all(bodies(path).values())
    assert bucket_keys(s3_client, s3_bucket) == []
    with EventStore(path.parent) as es:
        assert len(list(es.iter_events())) == len(events)
    fault_proxy.pass_through()
    assert archiver.run_once(force=True).error is None
    assert archiver.metrics.value(0, "healthy") == 1
    assert sorted(archived_rows(store)) == list(range(len(events)))


def test_pushdown_read_fetches_a_fraction_of_the_object(tmp_path, s3_server: MotoS3, s3_bucket):
    path = partition_path(tmp_path / "events", 0)
    writer = EventLogPartition(path)
    for b in range(20):
        writer.append(
            [tick(f"S{n % 200:03d}-USD", n, T0 + n * S // 10) for n in range(b * 1000, (b + 1) * 1000)]
        )
    writer.close()
    store = s3_store(s3_bucket, s3_server.endpoint_url)
    Archiver(path, 0, store, cfg(batch_rows=100_000, row_group_rows=2048)).run_once(force=True)
    reader = ArchiveReader(store)
    objects = reader.list_objects("ticks")
    total = sum(o.size for o in objects)
    table = reader.read("S042-USD", T0 + 300 * S, T0 + 1500 * S)
    assert table.num_rows == len([n for n in range(20_000) if n % 200 == 42 and 3000 <= n < 15000])
    assert set(table["symbol"].to_pylist()) == {"S042-USD"}
    assert reader.bytes_fetched < total / 4, (reader.bytes_fetched, total)


HOSTILE = ["../", "/", "../../etc/passwd", "a/b\\c", "ünï€😀", "x" * 5000, 'q"u,o[t]e{}', "\n"]


def test_hostile_symbols_round_trip_and_never_reach_a_key(tmp_path, s3_server: MotoS3, s3_bucket, s3_client):
    path = partition_path(tmp_path / "events", 0)
    writer = EventLogPartition(path)
    events = [tick(sym, n, T0 + n * S) for n, sym in enumerate(HOSTILE * 3, start=1)]
    writer.append(events)
    writer.close()
    store = s3_store(s3_bucket, s3_server.endpoint_url)
    assert Archiver(path, 0, store, cfg()).run_once(force=True).error is None
    keys = bucket_keys(s3_client, s3_bucket)
    assert keys
    assert all(KEY.match(k) and k.startswith("ticktape/stream=") for k in keys)
    assert not any(sym.strip("/.") and sym.strip("/.") in k for k in keys for sym in HOSTILE)
    reader = ArchiveReader(store)
    for sym in HOSTILE:
        got = reader.read(sym, T0, T0 + HOUR)
        assert got["event_id"].to_pylist() == [e.event_id for e in events if e.aggregate == f"{sym}@binance"]
    assert verify(store, "ticktape", [path], deep=True).ok


def test_verify_finds_a_deleted_object_and_an_orphan(log, s3_server: MotoS3, s3_bucket, s3_client):
    path, _ = log
    store = s3_store(s3_bucket, s3_server.endpoint_url)
    Archiver(path, 0, store, cfg()).run_once(force=True)
    gone = recorded_keys(path)[0]
    s3_client.delete_object(Bucket=s3_bucket, Key=gone)
    orphan = "ticktape/stream=ticks/date=2024-01-01/hour=00/part=000/000000000000-000000000010.parquet"
    s3_client.put_object(Bucket=s3_bucket, Key=orphan, Body=b"stray")
    report = verify(store, "ticktape", [path])
    assert report.missing == [gone]
    assert report.orphans == [orphan]
    assert report.duplicates
    assert not report.ok


def test_a_live_flow_archived_then_read_back_gives_exactly_its_accepted_ticks(
    tmp_path, s3_server: MotoS3, s3_bucket, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    config = from_dict({
        "run": {"mode": "replay", "data_dir": str(tmp_path / "data")},
        "metrics": {"enabled": False},
        "source": {"kind": "synthetic", "synthetic": {"symbols": 12, "rate": 4.0, "duration": "2h", "partitions": 2,
                                                      "duplicate_rate": 0.01, "malformed_rate": 0.01}},
    })  # fmt: skip
    stats = RunStats()
    accepted: list[tuple[str, list[PriceUpdate]]] = []
    outputs = wiring.make_outputs(config, stats)
    outputs.prices.append(TestingSink(accepted))
    run_main(build_flow(config, source=wiring.make_source(config, stats), outputs=outputs, stats=stats))
    archive = cfg(store=f"s3://{s3_bucket}/archive", batch_rows=5000)
    results = archive_all(config.data_path, archive, force=True)
    assert results
    assert all(r.error is None for r in results.values())
    assert sum(r.rows for r in results.values()) > 28_000
    since, until = T0 + 1800 * S, T0 + 5400 * S  # 00:30 to 01:30: two hour prefixes
    out = CliRunner().invoke(
        __import__("ticktape.flows.cli.archive", fromlist=["archive"]).archive,
        ["read", "S0005-USD", "--data-dir", str(tmp_path / "data"), "--store", f"s3://{s3_bucket}/archive",
         "--from", str(since), "--to", str(until), "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    got = [msgspec.json.decode(line) for line in out.stdout.splitlines()]
    want = sorted(
        (
            u
            for _, batch in accepted
            for u in batch
            if u.symbol == "S0005-USD" and since <= u.ts_event < until
        ),
        key=lambda u: (u.ts_event, u.seq),
    )
    fields = list(PriceUpdate.__struct_fields__)
    assert [tuple(r[f] for f in fields) for r in got] == [msgspec.structs.astuple(u) for u in want]
    assert want
    with EventStore(config.data_path / "events") as es:  # the log still holds everything (retention 1d)
        logged = [
            e for e in es.iter_events(type=EventType.PRICE_UPDATED) if e.aggregate == "S0005-USD@synthetic"
        ]
    assert len(logged) == len([u for _, b in accepted for u in b if u.symbol == "S0005-USD"])
    assert fmt.STREAMS == (
        "ticks",
        "events",
        "quotes",
        "books",
    )  # quotes/books: the market log of venue feeds


def test_backfill_from_s3_uses_the_configured_endpoint(tmp_path, s3_server: MotoS3, s3_bucket, monkeypatch):
    """Issue 13 item 13: `backfill --source s3://...` ignored `[archive.s3] endpoint_url`
    (only the AWS variables could point it at MinIO). Nothing but the config points at
    the moto server here; the backfill reproduces the live run's candles."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    toml = tmp_path / "job.toml"
    toml.write_text(
        f'[run]\nmode = "replay"\ndata_dir = "{tmp_path / "live"}"\n[metrics]\nenabled = false\n'
        '[source.synthetic]\nsymbols = 6\nrate = 5.0\nduration = "30m"\n'
        f'[archive]\nenabled = true\nstore = "s3://{s3_bucket}/arch"\n'
        f'[archive.s3]\nbucket = "{s3_bucket}"\nendpoint_url = "{s3_server.endpoint_url}"\nregion = "us-east-1"\n'
    )
    config = load_config(toml, env={})
    run_main(build_flow(config))
    results = archive_all(config.data_path, wiring.archive_config(config), force=True)
    assert all(r.error is None for r in results.values())
    cli = CliRunner()
    args = ["-c", str(toml), "--data-dir", str(tmp_path / "backfilled"), "--source", f"s3://{s3_bucket}/arch"]
    out = cli.invoke(backfill, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    live = CandleStore(tmp_path / "live" / "candles").read()
    assert live
    assert [
        msgspec.structs.replace(c, ts_final=0)
        for c in CandleStore(tmp_path / "backfilled" / "candles").read()
    ] == [msgspec.structs.replace(c, ts_final=0) for c in live]
