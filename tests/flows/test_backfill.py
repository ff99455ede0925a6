"""Backfills: fast (vectorized) and streaming paths give identical candles; real data
equals an independent computation at 1m/5m/1h."""

from __future__ import annotations

import msgspec

from tests.flows.test_candles import assert_candles_match_polars, xrp_ticks
from tests.support.data import TRADES
from tests.support.flows import config
from ticktape.connectors.files.history import FileSourceConfig
from ticktape.flows.backfill.run import backfill
from ticktape.sinks.candles.store import CandleStore

XRP = TRADES / "XRP_ETH-trades.json.gz"
SEC = 1_000_000_000


def stored(data_dir):
    return [msgspec.structs.replace(c, ts_final=0) for c in CandleStore(data_dir / "candles").read()]


def run(tmp_path, name, **kw):
    cfg = config(tmp_path / name, candles={"intervals": ["1m", "5m", "1h"]})
    return backfill(cfg, **kw), tmp_path / name


def test_fast_and_streaming_paths_write_identical_candles(tmp_path):
    fast, fast_dir = run(tmp_path, "fast", files=[XRP])
    slow, slow_dir = run(tmp_path, "slow", files=[XRP], exact_streaming=True)
    assert fast.path == "fast"
    assert fast.reason == ""
    assert slow.path == "streaming"
    assert slow.reason == "--exact-streaming"
    assert fast.rows == slow.rows == 12_477
    assert stored(fast_dir) == stored(slow_dir)
    assert len(stored(fast_dir)) == fast.candles


def test_backfill_equals_an_independent_computation(tmp_path):
    report, data = run(tmp_path, "xrp", files=[XRP])
    assert report.path == "fast"
    candles = CandleStore(data / "candles").read()
    ticks = xrp_ticks()
    for interval in (60, 300, 3600):
        assert_candles_match_polars(candles, ticks, interval)


def test_time_and_symbol_filters(tmp_path):
    start = 1_570_752_000 * SEC + 3600 * SEC  # 2019-10-11 01:00
    report, data = run(
        tmp_path, "window", files=[XRP], since=start, until=start + 3600 * SEC, symbols=["XRP-ETH"]
    )
    candles = CandleStore(data / "candles").read()
    assert report.rows > 0
    assert {c.start for c in candles if c.interval == 3600} == {start}
    assert all(start <= c.start < start + 3600 * SEC for c in candles)
    none, _ = run(tmp_path, "none", files=[XRP], symbols=["BTC-USD"])
    assert none.rows == 0


def test_dirty_input_takes_the_streaming_path_and_still_matches(tmp_path):
    bad = tmp_path / "bad.csv"
    lines = (TRADES / "public_trades_list.csv").read_text().splitlines()
    lines.insert(5, "999,1675329600999,1206419999,,buy,-1.0,2.0,-2.0,2023-02-02 09:20:00.999000+00:00")
    bad.write_text("\n".join(lines) + "\n")
    fcfg = FileSourceConfig(symbol="ETH-USDT")
    report, data = run(tmp_path, "dirty", files=[bad], file_cfg=fcfg)
    assert report.path == "streaming"
    assert "price/size" in report.reason
    assert report.accounting["balanced"]
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    fast, fast_data = run(tmp_path, "clean", files=[clean], file_cfg=fcfg)
    assert fast.path == "fast"
    assert stored(data) == stored(fast_data)


def test_repair_gaps_refills_windows_from_a_history_source(tmp_path):
    import gzip
    import json

    from ticktape.connectors.files.history import FileSource
    from ticktape.flows import wiring
    from ticktape.flows.backfill.repair import repair_gaps
    from ticktape.flows.runner import run as run_flow
    from ticktape.infra.observability.metrics import RunStats
    from ticktape.sinks.cache import embedded as cache_mod
    from ticktape.sinks.eventlog.store import EventStore

    rows = json.loads(gzip.decompress(XRP.read_bytes()))
    holes = set(range(3000, 3010)) | set(range(7000, 7003)) | {9500}
    gappy = tmp_path / "XRP_ETH-trades.json.gz"
    gappy.write_bytes(gzip.compress(json.dumps([r for i, r in enumerate(rows) if i not in holes]).encode()))
    cfg = config(tmp_path / "live", candles={"intervals": ["1m", "5m", "1h"]})
    stats = RunStats()
    run_flow(
        cfg,
        source=FileSource(FileSourceConfig(paths=(str(gappy),))),
        outputs=wiring.make_outputs(cfg, stats),
        stats=stats,
        serve=False,
    )
    cache_mod.release(wiring.cache_path(cfg))
    with EventStore(wiring.events_dir(cfg)) as store:
        gaps = list(store.iter_events(type="SequenceGap"))
    assert len(gaps) == 3
    report = repair_gaps(cfg, files=[XRP])
    assert report.gaps == 3
    assert report.missing_ids == len(holes)
    assert report.recovered_trades == len(holes)
    assert report.unrecoverable_gaps == 0
    assert report.windows_revised >= 3
    _, complete_dir = run(tmp_path, "complete", files=[XRP])
    repaired = stored(cfg.data_path)
    assert [msgspec.structs.replace(c, revision=0) for c in repaired] == stored(complete_dir)
    assert any(c.revision == 1 for c in repaired)
    with EventStore(wiring.events_dir(cfg)) as store:
        revised = list(store.iter_events(type="CandleRevised"))
    assert len(revised) == report.windows_revised
    assert repair_gaps(cfg, files=[XRP]).windows_revised == 0  # idempotent: nothing left to fix
