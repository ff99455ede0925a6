"""The Redis cache backend and sink against a real redis-server (127.0.0.1, free port).

Compare-and-set under replay (also after TTL expiry), TTLs per type, candle revisions,
hostile names, ``clear`` confined to the prefix, restarts and buffer overflow (every write
counted), a password from the environment, warming from a flow's event log and candle
store, and the pipelining round trips and throughput.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bytewax.run import cli_main
from bytewax.testing import run_main

from tests.support import records
from tests.support.clock import FakeClock
from tests.support.flows import config
from ticktape.connectors.memory.messages import MemorySource
from ticktape.flows import wiring
from ticktape.flows.live.dataflow import build_flow
from ticktape.infra.bench.common import synthetic_messages
from ticktape.infra.devstack import ports
from ticktape.infra.devstack.services import RedisServer
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.durations import Duration
from ticktape.schemas.errors import BackpressureError, SinkError
from ticktape.schemas.records import Candle
from ticktape.sinks.cache import embedded as cache_mod
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, STAT_FIELDS, Write, cache_key
from ticktape.sinks.cache.embedded import EmbeddedCache
from ticktape.sinks.cache.redis.backend import RedisCache, RedisConfig
from ticktape.sinks.cache.redis.buffer import RedisCacheStats
from ticktape.sinks.cache.redis.config import connect
from ticktape.sinks.cache.redis.sink import RedisCacheSink
from ticktape.sinks.cache.sink import cache_writes
from ticktape.sinks.cache.warm import warm

pytestmark = pytest.mark.integration

S = 1_000_000_000
T = 1_700_000_000_000_000_001  # ns: 1 ns steps here are below a double's resolution
LONG = {PRICE: 3600 * S, METADATA: 3600 * S, HISTORY: 86_400 * S}
HOSTILE = ["../", "a:b", "a b", "*", "?x", "[x]", "{tag}", "%41", "ü€", "日本", ":ver", "~", "x" * 5000]


def make(
    server: RedisServer, ttls: dict[str, int] = LONG, *, clock: FakeClock | None = None, **options: Any
) -> RedisCache:
    """A cache under a fresh prefix, so tests sharing the session server never meet;
    ``clock`` times its reconnection backoff (default: the real monotonic clock)."""
    options.setdefault("key_prefix", f"t{uuid.uuid4().hex[:10]}:")
    for name in ("reconnect_base", "reconnect_cap", "timeout", "version_ttl"):
        if isinstance(options.get(name), str):
            options[name] = Duration.parse(options[name])
    cfg = RedisConfig(url=server.url, **options)
    return RedisCache(cfg, ttls) if clock is None else RedisCache(cfg, ttls, clock=clock)


def let_ttls_pass(cache: RedisCache, keys: list[str], ms: int) -> None:
    """What ``ms`` milliseconds do to ``keys`` on the server, without waiting for them:
    a key whose TTL (as the server reports it, ``PTTL``) ends within ``ms`` expires now
    (``PEXPIREAT`` in the past: Redis deletes it as at its TTL); the others must outlive
    ``ms`` (no TTL, or a longer one) and stay. Redis enforces TTLs with its own clock, so
    this is how a test moves that clock."""
    raw = cache.client
    for key in keys:
        pttl = raw.pttl(cache.prefix + key)
        if 0 <= pttl <= ms:
            raw.pexpireat(cache.prefix + key, 1)
        else:
            assert pttl in (-2, -1) or pttl > ms, (key, pttl)  # -2: absent, -1: no TTL


@pytest.fixture
def cache(redis_server: RedisServer) -> Iterator[RedisCache]:
    c = make(redis_server)
    yield c
    c.clear()
    c.close()


def price(symbol: str, v1: int, v2: int = 0, venue: str = "binance") -> Write:
    return Write(PRICE, cache_key(PRICE, venue, symbol), v1, v2, f"{symbol}@{v1}/{v2}".encode())


def candle(start: int, revision: int, close: float = 1.0, interval: int = 60) -> Candle:
    return records.candle(
        venue="binance", symbol="BTC-USDT", interval=interval, start=start, end=start + interval * S, open=1.0,
        high=2.0, low=0.5, close=close, volume=1.0, notional=close, vwap=close, trades=1, buy_volume=0.5,
        sell_volume=0.5, first_trade_id="1", last_trade_id="2", revision=revision, ts_final=start + interval * S,
    )  # fmt: skip


def stop_and_restart(server: RedisServer) -> Callable[[], None]:
    port = server.port
    server.stop()

    def restart() -> None:
        assert ports.wait_port_bindable(port, timeout=10.0)
        server.start()

    return restart


# -- compare-and-set -------------------------------------------------------------------


def test_cas_under_replay_never_moves_backwards(cache: RedisCache) -> None:
    rng = random.Random(11)
    symbols = [f"S{i}-USD" for i in range(40)]
    # offsets 0..N-1 of a stream: per symbol rising (ts_event, seq), including ties on
    # ts_event and 1 ns steps
    stream = [price(sym, T + i // 3, i) for i in range(30) for sym in symbols]
    newest: dict[str, tuple[int, int]] = {}

    def check() -> None:
        for key, version in newest.items():
            assert cache.version(key) == version

    for start in range(0, len(stream), 97):
        batch = stream[start : start + 97]
        landed = cache.put_many(batch)
        assert landed == len(batch)  # every write is newer than the last of its key
        for w in batch:
            newest[w.key] = max(newest.get(w.key, (0, 0)), (w.v1, w.v2))
        check()
    before = cache.counters.get("stale_writes", PRICE)
    for replay_from in (len(stream) // 2, 0):  # replay old offsets after new ones
        assert cache.put_many(stream[replay_from:]) == 0
        check()
    shuffled = stream[:]
    rng.shuffle(shuffled)
    for start in range(0, len(shuffled), 250):
        assert cache.put_many(shuffled[start : start + 250]) == 0
        check()
    replayed = (len(stream) - len(stream) // 2) + len(stream) + len(stream)
    assert cache.counters.get("stale_writes", PRICE) - before == replayed
    entry = cache.lookup(cache_key(PRICE, "binance", "S7-USD"))
    assert entry is not None
    assert (entry.v1, entry.v2) == (T + 29 // 3, 29)
    assert entry.value == b"S7-USD@%d/29" % (T + 29 // 3)


def test_one_nanosecond_and_one_seq_apart_are_ordered(cache: RedisCache) -> None:
    key = cache_key(PRICE, "binance", "BTC-USDT")
    assert cache.put_many([price("BTC-USDT", T + 1, 0)]) == 1
    assert cache.put_many([price("BTC-USDT", T, 2**40)]) == 0  # older ts_event, larger seq
    assert cache.put_many([price("BTC-USDT", T + 1, 0)]) == 0  # equal: refused
    assert cache.put_many([price("BTC-USDT", T + 1, 1)]) == 1
    assert cache.version(key) == (T + 1, 1)


def test_versions_outlive_expired_values(redis_server: RedisServer) -> None:
    c = make(redis_server, {PRICE: 100_000_000, METADATA: 3600 * S, HISTORY: 3600 * S})
    key = cache_key(PRICE, "binance", "ETH-USDT")
    assert c.put_many([price("ETH-USDT", T, 5)]) == 1
    value_ttl, version_ttl = c.client.pttl(c.prefix + key), c.client.pttl(c.prefix + key + ":ver")
    assert value_ttl == -2 or 0 < value_ttl <= 100  # -2: already gone (a slow host)
    assert 6.9 * 86_400_000 < version_ttl <= 7 * 86_400_000
    let_ttls_pass(c, [key, key + ":ver"], 300)
    assert c.get(key) is None  # the value expired ...
    assert c.version(key) == (T, 5)  # ... its version did not
    assert c.put_many([price("ETH-USDT", T, 4), price("ETH-USDT", T - 1, 99)]) == 0
    assert c.get(key) is None
    assert c.put_many([price("ETH-USDT", T, 6)]) == 1
    assert c.get(key) == b"ETH-USDT@%d/6" % T
    st = c.stats()[PRICE]
    assert set(st) == set(STAT_FIELDS)
    assert (st["writes"], st["stale_writes"], st["hits"], st["misses"], st["expirations"]) == (2, 2, 1, 2, 2)
    c.clear()
    c.close()


def test_ttl_per_type(redis_server: RedisServer) -> None:
    c = make(redis_server, {PRICE: 300_000_000, METADATA: 60 * S, HISTORY: 120 * S})
    writes = [price("X-Y", T), Write(METADATA, cache_key(METADATA, "v", "X-Y"), T, 0, b"m")]
    writes += cache_writes([], [candle(T, 0)])
    assert c.put_many(writes) == 3
    raw = c.client
    ttl = {w.type: raw.pttl(c.prefix + w.key) for w in writes}
    assert ttl[PRICE] == -2 or 0 < ttl[PRICE] <= 300  # -2: already gone (a slow host)
    assert 59_000 < ttl[METADATA] <= 60_000
    assert 119_000 < ttl[HISTORY] <= 120_000
    for w in writes:  # versions: max(type TTL, version_ttl = 7 days)
        assert 6.9 * 86_400_000 < raw.pttl(c.prefix + w.key + ":ver") <= 7 * 86_400_000
    let_ttls_pass(c, [w.key for w in writes] + [w.key + ":ver" for w in writes], 700)
    assert c.get(writes[0].key) is None
    assert c.get(writes[1].key) == b"m"
    assert c.get(writes[2].key) is not None
    forever = make(redis_server, {PRICE: 0}, version_ttl="0s", key_prefix=c.prefix)
    forever.put_many([price("X-Y", T + 1)])
    assert raw.pttl(c.prefix + writes[0].key) == -1  # TTL 0: no expiry
    assert raw.pttl(c.prefix + writes[0].key + ":ver") == -1
    c.clear()
    c.close()
    forever.close()


def test_candle_revisions_upsert(cache: RedisCache) -> None:
    key = cache_key(HISTORY, "binance", "BTC-USDT", "candle/60")
    t0 = 1_700_000_040 * S
    assert cache.put_many(cache_writes([], [candle(t0, 0, 10.0)])) == 1
    assert cache.put_many(cache_writes([], [candle(t0, 2, 12.0), candle(t0, 1, 11.0)])) == 1
    assert cache.put_many(cache_writes([], [candle(t0, 1, 11.0)])) == 0  # late older revision
    assert cache.version(key) == (t0, 2)
    assert cache.put_many(cache_writes([], [candle(t0 + 60 * S, 0, 20.0)])) == 1  # next window
    assert cache.put_many(cache_writes([], [candle(t0, 3, 13.0)])) == 0  # revision of an older window
    entry = cache.lookup(key)
    assert entry is not None
    assert (entry.v1, entry.v2) == (t0 + 60 * S, 0)
    assert cache.stats()[HISTORY]["stale_writes"] == 2


# -- names and prefixes -------------------------------------------------------------------


def test_hostile_names_round_trip_and_never_collide(cache: RedisCache) -> None:
    writes = [
        Write(PRICE, cache_key(PRICE, venue, symbol), T, 0, f"{venue!r}|{symbol!r}".encode())
        for venue in [*HOSTILE, "binance"]
        for symbol in [*HOSTILE, "x" * 4999 + "y"]
    ]
    assert len({w.key for w in writes}) == len(writes)
    assert cache.put_many(writes) == len(writes)
    for w in writes:
        assert cache.get(w.key) == w.value
    assert cache.keys() == sorted(w.key for w in writes)
    assert cache.keys(cache_key(PRICE, "a:b", "*")) == [cache_key(PRICE, "a:b", "*")]  # no glob
    raw = [k.decode() for k in cache.client.scan_iter(match=cache.prefix + "*", count=1000)]
    assert len(raw) == 2 * len(writes)
    for k in raw:
        body = k[len(cache.prefix) :].removesuffix(":ver")
        assert set(body) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-%~/")
        assert len(body) < 450


def test_clear_only_touches_this_caches_keys(redis_server: RedisServer) -> None:
    c = make(redis_server)
    neighbour = make(redis_server, key_prefix=c.prefix + "x:")  # a prefix inside ours
    raw = c.client
    foreign = {"foreign:price/binance/BTC-USDT": b"1", c.prefix + "notes": b"2", c.prefix + "price": b"3"}
    for k, v in foreign.items():
        raw.set(k, v)
    c.put_many([price("A-B", T), price("C-D", T)])
    neighbour.put_many([price("A-B", T)])
    c.close()  # saves counters under <prefix>stats
    assert c.clear() == 2
    assert c.keys() == []
    for k, v in foreign.items():
        assert raw.get(k) == v
    assert raw.exists(c.prefix + "stats")
    assert neighbour.get(cache_key(PRICE, "binance", "A-B")) is not None
    neighbour.clear()
    raw.delete(*foreign)


# -- outages -------------------------------------------------------------------------------


def test_restart_mid_run_buffers_counts_and_delivers(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    clock = FakeClock()
    c = make(server, clock=clock, reconnect_base="20ms", reconnect_cap="100ms", timeout="1s")
    a = [price(f"A{i}-X", T) for i in range(50)]
    assert c.put_many(a) == 50
    restart = stop_and_restart(server)
    b = [price(f"B{i}-X", T) for i in range(30)] + [price("A1-X", T + 1)]
    assert c.put_many(b[:10]) == 0
    assert c.put_many(b[10:]) == 0
    assert not c.available
    assert c.buffered == 31
    assert c.counters.buffered[PRICE] == 31
    c.flush()  # "buffer" mode: a snapshot goes on while Redis is away
    restart()
    clock.advance(0.15)  # past the backoff cap
    c_writes = [price(f"C{i}-X", T) for i in range(5)]
    assert c.put_many(c_writes) == 36
    assert c.available
    assert c.buffered == 0
    assert c.counters.buffered[PRICE] == 0
    for w in b + c_writes:
        assert c.get(w.key) == w.value
    # The restarted server has no persistence: it lost A (Redis's durability, not ours).
    assert c.get(a[0].key) is None
    st = c.counters
    assert st.get("writes", PRICE) == 50 + 31 + 5
    assert st.get("buffer_dropped", PRICE) == 0
    assert st.reconnects == 1
    c.close()


def test_after_redis_returns_every_partition_follows_the_first_that_reconnects(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """Issue 13 item 14: after Redis came back, partitions sat out their own backoff (up
    to ``reconnect_cap``) and idle ones never tried again, so ``up`` stayed 0 for ~12 s."""
    server = redis_factory()
    shared = RedisCacheStats()  # one per sink: shared by its partitions
    cfg = RedisConfig(
        url=server.url, key_prefix=f"t{uuid.uuid4().hex[:10]}:", reconnect_base=Duration.parse("5s"),
        reconnect_cap=Duration.parse("10s"), timeout=Duration.parse("1s"),
    )  # fmt: skip
    busy, idle, fresh = (RedisCache(cfg, LONG, stats=shared) for _ in range(3))
    assert busy.put_many([price("A-X", T)]) == 1
    restart = stop_and_restart(server)
    assert busy.put_many([price("A-X", T + 1)]) == 0
    idle.flush()  # a snapshot of a partition without writes: it notices nothing yet
    assert idle.put_many([price("B-X", T)]) == 0
    idle.flush()
    assert not shared.up
    restart()
    # Both sit in a backoff of >= 2.5 s; a partition that reaches Redis now (here one
    # that had nothing to retry) lets them go at their next write or snapshot.
    assert fresh.put_many([price("C-X", T)]) == 1
    busy.flush()
    idle.flush()
    assert busy.available
    assert idle.available
    assert shared.up
    assert busy.get(price("A-X", T + 1).key) == b"A-X@1700000000000000002/0"
    assert idle.get(price("B-X", T).key) == b"B-X@1700000000000000001/0"
    for c in (busy, idle, fresh):
        c.clear()
        c.close()


def test_buffer_overflow_is_counted_exactly(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    clock = FakeClock()
    c = make(server, clock=clock, buffer_max=5, reconnect_base="20ms", reconnect_cap="50ms", timeout="1s")
    restart = stop_and_restart(server)
    writes = [price(f"K{i}-X", T) for i in range(8)]
    assert c.put_many(writes) == 0
    assert c.put_many([price("K7-X", T - 1), price("K7-X", T + 1)]) == 0  # collapse into K7
    assert c.counters.get("buffer_dropped", PRICE) == 3  # K0, K1, K2: the least recently written
    assert c.counters.get("buffer_collapsed", PRICE) == 2
    assert c.buffered == 5
    restart()
    clock.advance(0.1)  # past the backoff cap
    c.flush()
    assert c.buffered == 0
    for i in range(3):
        assert c.version(writes[i].key) is None
    for i in range(3, 7):
        assert c.get(writes[i].key) == writes[i].value
    assert c.version(cache_key(PRICE, "binance", "K7-X")) == (T + 1, 0)
    assert c.counters.get("writes", PRICE) == 5
    c.close()


def test_fail_mode_refuses_to_snapshot_or_drop(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    c = make(server, on_unavailable="fail", buffer_max=3, reconnect_base="10s", reconnect_cap="10s")
    stop_and_restart(server)
    assert c.put_many([price("A-X", T), price("B-X", T)]) == 0
    with pytest.raises(SinkError, match="2 cache writes are waiting"):
        c.flush()
    with pytest.raises(BackpressureError):
        c.put_many([price("C-X", T), price("D-X", T)])
    assert c.counters.get("buffer_dropped", PRICE) == 0
    with pytest.raises(SinkError, match="dropped"):
        c.close()  # one last try fails: the loss is counted and raised
    assert c.counters.get("buffer_dropped", PRICE) == 3


def test_close_while_down_counts_what_it_drops(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    c = make(server)
    stop_and_restart(server)
    c.put_many([price("A-X", T), Write(METADATA, cache_key(METADATA, "v", "A"), T, 0, b"m")])
    c.close()
    assert c.counters.get("buffer_dropped", PRICE) == 1
    assert c.counters.get("buffer_dropped", METADATA) == 1


def test_password_only_from_the_environment(
    redis_factory: Callable[[], RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = redis_factory()
    monkeypatch.delenv("TICKTAPE_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    connect(RedisConfig(url=server.url)).config_set("requirepass", "s3cret")
    c = make(server)
    with pytest.raises(SinkError, match="TICKTAPE_REDIS_PASSWORD"):
        c.put_many([price("A-X", T)])
    monkeypatch.setenv("TICKTAPE_REDIS_PASSWORD", "s3cret")
    c = make(server)
    assert c.put_many([price("A-X", T)]) == 1
    c.close()


# -- the sink in a flow, and warming ----------------------------------------------------------


def run_flow(tmp_path: Path, rcfg: RedisConfig, workers: int = 1) -> tuple[Any, RunStats, RedisCacheSink]:
    """A small replay-mode run with the embedded outputs plus the Redis cache sink."""
    cfg = config(tmp_path, cache={"price_ttl": "1h"})
    stats = RunStats()
    outputs = wiring.make_outputs(cfg, stats)
    sink = RedisCacheSink(rcfg, wiring.cache_ttls(cfg), stats=stats)
    outputs.cache.append(sink)
    source = MemorySource(synthetic_messages(4000, 12, partitions=2), batch_size=250)
    flow = build_flow(cfg, source=source, outputs=outputs, stats=stats)
    if workers == 1:
        run_main(flow)
    else:
        cli_main(flow, workers_per_process=workers)
    cache_mod.release(wiring.cache_path(cfg))
    return cfg, stats, sink


def assert_same(red: RedisCache, embedded: EmbeddedCache, *, values: bool = True) -> None:
    keys = embedded.keys()
    assert red.keys() == keys
    for k in keys:
        e, r = embedded.peek(k), red.peek(k)
        assert e is not None
        assert r is not None, k
        assert (r.type, r.v1, r.v2) == (e.type, e.v1, e.v2), k
        if values:
            assert r.value == e.value, k


@pytest.mark.parametrize("workers", [1, 2])
def test_flow_sink_and_warm_match_the_embedded_cache(
    tmp_path: Path, redis_server: RedisServer, workers: int
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    rcfg = RedisConfig(url=redis_server.url, key_prefix=prefix, batch=64)
    cfg, stats, _ = run_flow(tmp_path, rcfg, workers)
    ttls = wiring.cache_ttls(cfg)
    assert stats.sink_writes["redis_cache"] > 0  # (per-batch dedupe: not always == "cache")
    assert any(m.name == "ticktape_cache_writes" for c in stats.collectors for m in c())
    embedded = EmbeddedCache(wiring.cache_path(cfg), ttls)
    keys = embedded.keys()
    assert {k.split("/")[0] for k in keys} == {PRICE, METADATA, HISTORY}
    live = RedisCache(rcfg, ttls)
    assert_same(live, embedded)
    warmed = RedisCache(RedisConfig(url=redis_server.url, key_prefix=prefix + "w:"), ttls)
    events, candles = wiring.events_dir(cfg), wiring.candles_dir(cfg)
    assert warm(warmed, events, candles_dir=candles) == len(keys)
    assert_same(warmed, embedded)
    assert warm(warmed, events, candles_dir=candles) == 0  # idempotent
    assert warm(live, events, candles_dir=candles) == 0  # never backwards
    embedded.close()
    for c in (live, warmed):
        c.clear()
        c.close()


def test_flow_with_redis_down_counts_every_drop_and_a_replay_repairs(
    tmp_path: Path, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    rcfg = RedisConfig(
        url=server.url, reconnect_base=Duration.parse("10ms"), reconnect_cap=Duration.parse("20ms")
    )
    restart = stop_and_restart(server)
    cfg, _, sink = run_flow(tmp_path / "down", rcfg)
    embedded = EmbeddedCache(wiring.cache_path(cfg), wiring.cache_ttls(cfg))
    keys = embedded.keys()
    dropped = sink.counters.counts["buffer_dropped"]
    assert sum(dropped.values()) == len(keys)  # every key's latest write, counted at close
    assert dropped == Counter(k.split("/")[0] for k in keys)
    assert sink.counters.counts["writes"] == {}
    assert not sink.counters.up
    restart()
    cfg, _, sink = run_flow(tmp_path / "down", rcfg)  # the replay the job would do
    # same versions; values differ in wall-clock stamps (ts_recv, ts_final) of the rerun
    assert_same(RedisCache(rcfg, wiring.cache_ttls(cfg)), embedded, values=False)
    assert sum(sink.counters.counts["buffer_dropped"].values()) == 0
    embedded.close()


# -- pipelining ----------------------------------------------------------------------------------


def test_pipelining_costs_one_round_trip_per_batch(redis_server: RedisServer) -> None:
    """Writes reach Redis as one compare-and-set script call per ``batch`` writes (the
    speed of that, against plain pipelined SET, is the `redis` bench scenario's job)."""
    n, batch = 20_000, 500
    c = make(redis_server, batch=batch)
    writes = [price(f"S{i % 2000}-X", T + i) for i in range(n)]
    raw = c.client

    def calls(command: str) -> int:
        return int(raw.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    before = calls("evalsha")
    landed = sum(c.put_many(writes[i : i + 2000]) for i in range(0, n, 2000))
    assert calls("evalsha") - before == n // batch  # one round trip per `batch` writes
    assert landed == n  # every version is newer than the one before it
    c.clear()
    c.close()
