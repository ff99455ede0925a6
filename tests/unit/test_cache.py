"""ticktape.sinks.cache.embedded: the embedded cache (TTLs, replay-safe versions, LRU bounds, persistence,
statistics, thread safety). Time is always passed explicitly (``now_ns``, or an injected
``clock`` as the sink's calls without ``now_ns`` read it)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.clock import FakeNsClock
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, TYPES, Entry, Write, cache_key
from ticktape.sinks.cache.embedded import EmbeddedCache

S = 1_000_000_000
T0 = 1_700_000_000 * S
TTLS = {PRICE: 1 * S, METADATA: 3600 * S, HISTORY: 86_400 * S}


def price(symbol: str, v1: int, v2: int = 0, value: bytes | None = None) -> Write:
    key = cache_key(PRICE, "binance", symbol)
    return Write(PRICE, key, v1, v2, value if value is not None else f"{symbol}:{v1}:{v2}".encode())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


def test_cache_key_layout() -> None:
    assert cache_key(PRICE, "binance", "BTC-USDT") == "price/binance/BTC-USDT"
    assert cache_key(HISTORY, "kraken", "BTC-USD", "60") == "history/kraken/BTC-USD/60"


@pytest.mark.parametrize("path", [None, "file"])
def test_put_then_get(path: str | None, db: Path) -> None:
    cache = EmbeddedCache(db if path else None, TTLS)
    assert cache.put_many([price("BTC-USDT", 5, 1, b"v")], now_ns=T0) == 1
    assert cache.get("price/binance/BTC-USDT", now_ns=T0) == b"v"
    assert cache.lookup("price/binance/BTC-USDT", now_ns=T0) == Entry(PRICE, b"v", 5, 1, T0 + S)
    assert cache.get("price/binance/ETH-USDT", now_ns=T0) is None
    cache.close()


# -- TTLs --------------------------------------------------------------------------


@pytest.mark.parametrize(("typ", "ttl"), list(TTLS.items()))
def test_ttl_per_type(typ: str, ttl: int, db: Path) -> None:
    cache = EmbeddedCache(db, TTLS)
    key = cache_key(typ, "v", "X")
    cache.put_many([Write(typ, key, 1, 0, b"x")], now_ns=T0)
    assert cache.get(key, now_ns=T0 + ttl) == b"x"  # fresh up to and including the TTL
    assert cache.get(key, now_ns=T0 + ttl + 1) is None
    assert cache.peek(key) == Entry(typ, b"x", 1, 0, T0 + ttl)  # still stored
    stats = cache.stats()[typ]
    assert (stats["hits"], stats["misses"], stats["expirations"]) == (1, 1, 1)
    cache.close()


def test_a_newer_write_refreshes_the_ttl() -> None:
    cache = EmbeddedCache(None, TTLS)
    cache.put_many([price("A", 1)], now_ns=T0)
    cache.put_many([price("A", 2)], now_ns=T0 + 10 * S)
    assert cache.get("price/binance/A", now_ns=T0 + 10 * S + S) == b"A:2:0"


# -- versions ----------------------------------------------------------------------


def test_older_or_equal_versions_are_refused() -> None:
    cache = EmbeddedCache(None, TTLS)
    key = "price/binance/A"
    assert cache.put_many([price("A", 10, 5)], now_ns=T0) == 1
    assert cache.put_many([price("A", 10, 5, b"same")], now_ns=T0) == 0
    assert cache.put_many([price("A", 10, 4)], now_ns=T0) == 0
    assert cache.put_many([price("A", 9, 99)], now_ns=T0) == 0
    assert cache.get(key, now_ns=T0) == b"A:10:5"
    assert cache.put_many([price("A", 10, 6)], now_ns=T0) == 1
    assert cache.put_many([price("A", 11, 0)], now_ns=T0) == 1
    assert cache.get(key, now_ns=T0) == b"A:11:0"
    assert cache.stats()[PRICE]["stale_writes"] == 3
    assert cache.stats()[PRICE]["writes"] == 3


def test_newest_wins_within_one_batch_in_any_order() -> None:
    cache = EmbeddedCache(None, TTLS)
    landed = cache.put_many([price("A", 3), price("A", 1), price("A", 5), price("A", 4)], now_ns=T0)
    assert landed == 2  # 3 then 5
    assert cache.get("price/binance/A", now_ns=T0) == b"A:5:0"


def test_versions_survive_expiry(db: Path) -> None:
    cache = EmbeddedCache(db, TTLS)
    cache.put_many([price("A", 10)], now_ns=T0)
    later = T0 + 3600 * S
    assert cache.get("price/binance/A", now_ns=later) is None  # expired
    assert cache.put_many([price("A", 9)], now_ns=later) == 0  # a replay of older data
    assert cache.peek("price/binance/A") == Entry(PRICE, b"A:10:0", 10, 0, T0 + S)
    assert cache.put_many([price("A", 11)], now_ns=later) == 1
    assert cache.get("price/binance/A", now_ns=later) == b"A:11:0"
    cache.close()


def test_versions_survive_lru_eviction(db: Path) -> None:
    cache = EmbeddedCache(db, TTLS, max_entries=2)
    cache.put_many([price("A", 10), price("B", 10), price("C", 10)], now_ns=T0)
    assert cache.stats()[PRICE]["evictions"] == 1
    assert cache.stats()[PRICE]["entries"] == 2
    # A was evicted from memory; its version is still known from the file.
    assert cache.put_many([price("A", 9)], now_ns=T0) == 0
    assert cache.get("price/binance/A", now_ns=T0) == b"A:10:0"  # read through to the file
    assert cache.put_many([price("A", 11)], now_ns=T0) == 1
    cache.close()


def test_versions_survive_close_and_reopen(db: Path) -> None:
    first = EmbeddedCache(db, TTLS)
    first.put_many([price("A", 10, 3), price("B", 7)], now_ns=T0)
    first.close()
    again = EmbeddedCache(db, TTLS)
    assert again.put_many([price("A", 10, 2), price("A", 10, 3), price("B", 6)], now_ns=T0 + 99 * S) == 0
    assert again.peek("price/binance/A") == Entry(PRICE, b"A:10:3", 10, 3, T0 + S)
    assert again.put_many([price("A", 10, 4)], now_ns=T0) == 1
    again.close()
    third = EmbeddedCache(db, TTLS)
    assert third.peek("price/binance/A") == Entry(PRICE, b"A:10:4", 10, 4, T0 + S)
    third.close()


@given(
    st.lists(
        st.tuples(st.sampled_from("ABCDE"), st.integers(0, 5), st.integers(0, 3), st.integers(0, 3 * S)),
        max_size=60,
    )
)
def test_property_stored_version_is_the_max_ever_written(ops: list[tuple[str, int, int, int]]) -> None:
    """Whatever the order, the expiries and the evictions (2 entries in memory, a file
    behind), the stored version of a key is the max version written, never less."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddedCache(Path(tmp) / "c.sqlite", TTLS, max_entries=2)
        best: dict[str, tuple[int, int]] = {}
        now = T0
        for i, (sym, v1, v2, dt) in enumerate(ops):
            now += dt
            w = price(sym, v1, v2)
            landed = cache.put_many([w], now_ns=now)
            newer = (v1, v2) > best.get(sym, (-1, -1))
            assert landed == int(newer)
            if newer:
                best[sym] = (v1, v2)
            if i % 7 == 3:  # a restart now and then
                cache.close()
                cache = EmbeddedCache(Path(tmp) / "c.sqlite", TTLS, max_entries=2)
        for sym, version in best.items():
            entry = cache.peek(cache_key(PRICE, "binance", sym))
            assert entry is not None
            assert (entry.v1, entry.v2) == version
            assert entry.value == f"{sym}:{version[0]}:{version[1]}".encode()
        cache.close()


# -- LRU bounds --------------------------------------------------------------------


def test_lru_by_entries_keeps_the_recently_used() -> None:
    cache = EmbeddedCache(None, TTLS, max_entries=3)
    cache.put_many([price(s, 1) for s in "ABC"], now_ns=T0)
    assert cache.get("price/binance/A", now_ns=T0) is not None  # A is now the most recent
    cache.put_many([price("D", 1)], now_ns=T0)
    assert cache.keys() == ["price/binance/A", "price/binance/C", "price/binance/D"]
    cache.put_many([price("C", 2)], now_ns=T0)  # a write refreshes too
    cache.put_many([price("E", 1)], now_ns=T0)
    assert cache.keys() == ["price/binance/C", "price/binance/D", "price/binance/E"]
    assert cache.stats()[PRICE]["evictions"] == 2


def test_lru_by_bytes() -> None:
    key_len = len("price/binance/A")
    cache = EmbeddedCache(None, TTLS, max_bytes=3 * (key_len + 10))
    cache.put_many([price(s, 1, value=b"x" * 10) for s in "ABC"], now_ns=T0)
    assert cache.bytes_used == 3 * (key_len + 10)
    assert cache.stats()[PRICE]["evictions"] == 0
    cache.put_many([price("D", 1, value=b"x" * 11)], now_ns=T0)  # one byte too many for A + B
    assert cache.keys() == ["price/binance/C", "price/binance/D"]
    assert cache.bytes_used == 2 * key_len + 21
    assert cache.stats()[PRICE]["evictions"] == 2
    # Replacing a value accounts for the old one.
    cache.put_many([price("D", 2, value=b"y")], now_ns=T0)
    assert cache.bytes_used == 2 * key_len + 11
    cache.put_many([price("A", 2, value=b"x" * 10)], now_ns=T0)
    assert cache.keys() == ["price/binance/A", "price/binance/C", "price/binance/D"]
    # An entry larger than the whole budget cannot stay.
    cache.put_many([price("E", 1, value=b"z" * 1000)], now_ns=T0)
    assert cache.keys() == []
    assert cache.bytes_used == 0
    assert cache.stats()[PRICE]["evictions"] == 6


def test_evictions_counted_per_type() -> None:
    cache = EmbeddedCache(None, TTLS, max_entries=2)
    cache.put_many(
        [
            Write(METADATA, "metadata/v/A", 1, 0, b"m"),
            Write(HISTORY, "history/v/A/60", 1, 0, b"h"),
            price("A", 1),
            price("B", 1),
        ],
        now_ns=T0,
    )
    stats = cache.stats()
    assert (stats[METADATA]["evictions"], stats[HISTORY]["evictions"], stats[PRICE]["evictions"]) == (1, 1, 0)
    assert stats[PRICE]["entries"] == 2


@given(
    st.lists(st.tuples(st.sampled_from("ABCDEFGH"), st.binary(max_size=40)), max_size=80),
    st.integers(1, 5),
    st.integers(20, 300),
)
def test_property_bounds_always_hold(
    writes: list[tuple[str, bytes]], max_entries: int, max_bytes: int
) -> None:
    cache = EmbeddedCache(None, TTLS, max_entries=max_entries, max_bytes=max_bytes)
    for v1, (sym, value) in enumerate(writes):
        cache.put_many([price(sym, v1, value=value)], now_ns=T0)
        stats = cache.stats()[PRICE]
        assert stats["entries"] <= max_entries
        assert cache.bytes_used <= max_bytes
        stored = cache.keys()
        assert stats["entries"] == len(stored)
        assert cache.bytes_used == sum(len(k) + len(cache.peek(k).value) for k in stored)  # type: ignore[union-attr]
        assert stats["writes"] == v1 + 1  # every version is newer than the last


# -- statistics and persistence ----------------------------------------------------


def test_stats_per_type() -> None:
    cache = EmbeddedCache(None, TTLS)
    cache.put_many([price("A", 1), Write(METADATA, "metadata/v/A", 1, 0, b"m")], now_ns=T0)
    cache.get("price/binance/A", now_ns=T0)
    cache.get("price/binance/A", now_ns=T0)
    cache.get("price/binance/B", now_ns=T0)
    cache.get("price/binance/A", now_ns=T0 + 2 * S)
    cache.get("metadata/v/A", now_ns=T0 + 2 * S)
    stats = cache.stats()
    assert set(stats) == set(TYPES)
    assert stats[PRICE] == {
        "hits": 2, "misses": 2, "hit_rate": 0.5, "writes": 1, "stale_writes": 0,
        "evictions": 0, "expirations": 1, "entries": 1,
    }  # fmt: skip
    assert (stats[METADATA]["hits"], stats[METADATA]["hit_rate"], stats[METADATA]["entries"]) == (1, 1.0, 1)
    assert stats[HISTORY]["hit_rate"] == 0.0
    assert stats[HISTORY]["entries"] == 0


def test_persisted_summary_and_counters(db: Path) -> None:
    cache = EmbeddedCache(db, TTLS)
    cache.put_many(
        [
            price("A", 1, value=b"12345"),
            price("B", 1, value=b"1"),
            Write(METADATA, "metadata/v/A", 1, 0, b"m"),
        ],
        now_ns=T0,
    )
    assert cache.persisted_summary(T0) == {
        PRICE: (2, 2, 2 * len("price/binance/A") + 6),
        METADATA: (1, 1, len("metadata/v/A") + 1),
    }
    assert cache.persisted_summary(T0 + 2 * S)[PRICE][:2] == (2, 0)  # both expired
    assert cache.persisted_counters() == {}  # nothing saved before close
    cache.get("price/binance/A", now_ns=T0)
    cache.get("price/binance/Z", now_ns=T0)
    cache.close()
    assert cache.persisted_summary(T0) == {}
    assert cache.persisted_counters() == {}

    again = EmbeddedCache(db, TTLS)
    counters = again.persisted_counters()
    assert counters[PRICE] == {
        "hits": 1,
        "misses": 1,
        "writes": 2,
        "stale_writes": 0,
        "evictions": 0,
        "expirations": 0,
    }
    assert counters[METADATA]["writes"] == 1
    again.put_many([price("A", 0)], now_ns=T0)  # stale
    again.close()
    third = EmbeddedCache(db, TTLS)
    counters = third.persisted_counters()
    assert (counters[PRICE]["writes"], counters[PRICE]["stale_writes"], counters[PRICE]["hits"]) == (2, 1, 1)
    third.close()


def test_calls_without_now_read_the_injected_clock(db: Path) -> None:
    """As the cache sink calls it (no ``now_ns``): TTLs and the flush timer follow ``clock``."""
    clock = FakeNsClock(T0)
    cache = EmbeddedCache(db, TTLS, flush_interval_ns=S, clock=clock)
    reader = EmbeddedCache(db, TTLS)
    cache.put_many([price("A", 1)])  # the first write flushes (never flushed yet)
    clock.advance(S - 1)
    cache.put_many([price("B", 1)])
    assert cache.lookup("price/binance/A") == Entry(PRICE, b"A:1:0", 1, 0, T0 + S)  # expires at T0 + TTL
    assert reader.peek("price/binance/B") is None  # pending: the interval has not passed
    clock.advance(1)
    assert cache.get("price/binance/A") == b"A:1:0"  # fresh up to and including the TTL
    cache.put_many([price("C", 1)])  # the interval has passed: B and C reach the file
    assert reader.peek("price/binance/B") == Entry(PRICE, b"B:1:0", 1, 0, T0 + 2 * S - 1)
    clock.advance(1)
    assert cache.get("price/binance/A") is None  # expired
    assert cache.stats()[PRICE]["expirations"] == 1
    reader.close()
    cache.close()


def test_writes_are_flushed_to_the_file_behind_memory(db: Path) -> None:
    cache = EmbeddedCache(db, TTLS, flush_interval_ns=S)
    cache.put_many([price("A", 1)], now_ns=T0)  # the first write flushes (never flushed yet)
    cache.put_many([price("B", 1)], now_ns=T0 + 1)
    reader = EmbeddedCache(db, TTLS)
    assert reader.peek("price/binance/A") is not None
    assert reader.peek("price/binance/B") is None  # still pending
    cache.put_many([price("C", 1)], now_ns=T0 + S)  # the interval has passed
    assert reader.peek("price/binance/B") is not None
    assert reader.peek("price/binance/C") is not None
    cache.put_many([price("D", 1)], now_ns=T0 + S + 1)
    cache.flush()
    assert reader.peek("price/binance/D") is not None
    reader.close()
    cache.close()


def test_evicted_pending_write_still_blocks_older_versions(db: Path) -> None:
    """An entry evicted from memory before the write-behind flush keeps its version."""
    cache = EmbeddedCache(db, TTLS, max_entries=1, flush_interval_ns=3600 * S)
    cache.put_many([price("X", 0)], now_ns=T0)  # first write: flushed
    cache.put_many([price("A", 10)], now_ns=T0 + 1)  # pending, evicts X
    cache.put_many([price("B", 10)], now_ns=T0 + 2)  # pending, evicts A
    assert cache.put_many([price("A", 9)], now_ns=T0 + 3) == 0
    assert cache.get("price/binance/A", now_ns=T0 + 3) == b"A:10:0"
    assert cache.peek("price/binance/A") == Entry(PRICE, b"A:10:0", 10, 0, T0 + 1 + S)
    cache.close()
    again = EmbeddedCache(db, TTLS)
    assert again.peek("price/binance/A") == Entry(PRICE, b"A:10:0", 10, 0, T0 + 1 + S)
    assert again.peek("price/binance/B") == Entry(PRICE, b"B:10:0", 10, 0, T0 + 2 + S)
    again.close()


def test_clear_drops_pending_writes_too(db: Path) -> None:
    cache = EmbeddedCache(db, TTLS, flush_interval_ns=3600 * S)
    cache.put_many([price("A", 1)], now_ns=T0)
    cache.put_many([price("B", 1)], now_ns=T0 + 1)  # pending
    assert cache.clear() == 2
    assert cache.keys() == []
    cache.close()
    again = EmbeddedCache(db, TTLS)
    assert again.keys() == []
    assert again.peek("price/binance/B") is None
    again.close()


def test_keys_and_clear(db: Path) -> None:
    cache = EmbeddedCache(db, TTLS, max_entries=1)
    cache.put_many([price("A", 1), price("B", 1), Write(METADATA, "metadata/v/A", 1, 0, b"m")], now_ns=T0)
    assert cache.keys() == ["metadata/v/A", "price/binance/A", "price/binance/B"]  # the file has all
    assert cache.keys("price/") == ["price/binance/A", "price/binance/B"]
    assert cache.clear() == 3
    assert cache.keys() == []
    assert cache.bytes_used == 0
    assert cache.put_many([price("A", 0)], now_ns=T0) == 1  # clear forgets versions on purpose
    cache.close()


# -- threads -----------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True])
def test_thread_safety_smoke(db: Path, background: bool) -> None:
    cache = EmbeddedCache(db, TTLS, max_entries=16, flush_interval_ns=0, background=background)
    errors: list[BaseException] = []
    n_threads, rounds = 6, 150
    start = threading.Barrier(n_threads)

    def worker(k: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                sym = f"S{(i + k) % 24}"
                cache.put_many([price(sym, i, k)], now_ns=T0 + i)
                cache.get(cache_key(PRICE, "binance", sym), now_ns=T0 + i)
                if i % 25 == 0:
                    cache.stats()
                    cache.keys("price/")
                    cache.persisted_summary(T0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, inside the cache's methods too
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    # Every key holds the max version any thread wrote to it.
    for s in range(24):
        versions = [(i, k) for k in range(n_threads) for i in range(rounds) if (i + k) % 24 == s]
        entry = cache.peek(cache_key(PRICE, "binance", f"S{s}"))
        assert entry is not None
        assert (entry.v1, entry.v2) == max(versions)
    stats = cache.stats()[PRICE]
    assert stats["entries"] <= 16
    assert stats["writes"] + stats["stale_writes"] == n_threads * rounds
    assert stats["hits"] + stats["misses"] == n_threads * rounds
    assert cache.bytes_used == sum(len(k) + len(e.value) for k, e in cache._mem.items())
    cache.close()


# -- background writer ------------------------------------------------------------------


def test_background_in_flight_writes_are_read_before_the_file(db: Path) -> None:
    """With the writer thread stalled, evicted entries exist only in flight: reads and
    version checks must see them, and they reach the file once it resumes."""
    cache = EmbeddedCache(db, TTLS, max_entries=1, flush_interval_ns=0, background=True)
    with cache._db_lock:  # the writer blocks on its first transaction
        cache.put_many([price("A", 10)], now_ns=T0)  # flushed: in flight
        cache.put_many([price("B", 10)], now_ns=T0 + 1)  # evicts A from memory
        assert cache.put_many([price("A", 9)], now_ns=T0 + 2) == 0  # refused: A=10 is in flight
        assert cache.get("price/binance/A", now_ns=T0 + 2) == b"A:10:0"
        assert cache.put_many([price("A", 11)], now_ns=T0 + 3) == 1
        assert cache.peek("price/binance/A") == Entry(PRICE, b"A:11:0", 11, 0, T0 + 3 + S)
    cache.flush()  # returns once committed
    assert cache._inflight == {}
    reader = EmbeddedCache(db, TTLS)
    assert reader.peek("price/binance/A") == Entry(PRICE, b"A:11:0", 11, 0, T0 + 3 + S)
    assert reader.peek("price/binance/B") == Entry(PRICE, b"B:10:0", 10, 0, T0 + 1 + S)
    reader.close()
    cache.close()


def test_background_writes_coalesce_while_the_writer_is_busy(db: Path) -> None:
    """A writer still committing does not block the caller: later flushes wait in memory
    and collect the newest entry per key, then go to the file as one."""
    cache = EmbeddedCache(db, TTLS, flush_interval_ns=0, background=True)
    assert cache._writer is not None
    with cache._db_lock:  # the writer blocks on its first transaction
        for i in range(50):  # more flushes than the writer's queue holds: none may wait
            cache.put_many([price(sym, i) for sym in "ABC"], now_ns=T0 + i)
        assert cache._writer.busy()
        assert cache._writer._queue.unfinished_tasks == 1  # the first flush only
        assert cache.get("price/binance/A", now_ns=T0 + 50) == b"A:49:0"
    cache.flush()
    assert not cache._writer.busy()
    reader = EmbeddedCache(db, TTLS)
    assert [reader.peek(f"price/binance/{sym}") for sym in "ABC"] == [
        Entry(PRICE, f"{sym}:49:0".encode(), 49, 0, T0 + 49 + S) for sym in "ABC"
    ]
    reader.close()
    cache.close()


@given(
    st.lists(
        st.tuples(st.sampled_from("ABCDE"), st.integers(0, 5), st.integers(0, 3), st.booleans()),
        max_size=60,
    )
)
def test_property_background_writer_never_moves_versions_back(ops: list[tuple[str, int, int, bool]]) -> None:
    """Every write flushed asynchronously, 2 entries in memory, restarts now and then:
    what lands and what is stored is exactly what the synchronous cache would do."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.sqlite"
        cache = EmbeddedCache(path, TTLS, max_entries=2, flush_interval_ns=0, background=True)
        best: dict[str, tuple[int, int]] = {}
        for i, (sym, v1, v2, restart) in enumerate(ops):
            landed = cache.put_many([price(sym, v1, v2)], now_ns=T0 + i)
            newer = (v1, v2) > best.get(sym, (-1, -1))
            assert landed == int(newer)
            if newer:
                best[sym] = (v1, v2)
            if restart:
                cache.close()
                cache = EmbeddedCache(path, TTLS, max_entries=2, flush_interval_ns=0, background=True)
        cache.close()
        reader = EmbeddedCache(path, TTLS)
        for sym, version in best.items():
            entry = reader.peek(cache_key(PRICE, "binance", sym))
            assert entry is not None
            assert (entry.v1, entry.v2) == version
        reader.close()


def test_background_write_errors_surface_in_the_caller(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddedCache(db, TTLS, flush_interval_ns=0, background=True)
    cache.put_many([price("A", 1)], now_ns=T0)
    cache.flush()
    monkeypatch.setattr("ticktape.sinks.cache.embedded._UPSERT", "INSERT INTO no_such_table VALUES (?)")
    cache.put_many([price("B", 1)], now_ns=T0 + 1)  # fails on the writer thread
    with pytest.raises(RuntimeError, match="background write failed") as err:
        cache.flush()
    assert "no_such_table" in str(err.value.__cause__)
    cache.put_many([price("C", 1)], now_ns=T0 + 2)
    with pytest.raises(RuntimeError, match="background write failed"):
        cache.flush()  # and stays failed: never silent
