"""ticktape.sinks.cache.api (key encoding, the CacheBackend protocol), the Redis config and the
pieces of the Redis sink that need no server (buffer, backoff, counters, versions)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from ticktape.schemas.durations import dec_hook
from ticktape.schemas.errors import BackpressureError, ConfigError
from ticktape.sinks.cache.api import (
    HISTORY,
    MAX_KEY_PART,
    PRICE,
    STAT_FIELDS,
    CacheBackend,
    Write,
    cache_key,
    decode_key_part,
    encode_key_part,
)
from ticktape.sinks.cache.embedded import EmbeddedCache
from ticktape.sinks.cache.redis.backend import RedisCache, RedisConfig
from ticktape.sinks.cache.redis.buffer import Backoff, RedisCacheStats, WriteBuffer
from ticktape.sinks.cache.redis.keys import parse_version, version_text

HOSTILE = [
    "../",
    "a:b",
    "a b",
    "*",
    "?",
    "[x]",
    "{tag}",
    "%41",
    "A",
    "ü€",
    "日本",
    "\n",
    ":ver",
    "~",
    "x" * 5000,
]


def test_backends_satisfy_the_protocol() -> None:
    embedded = EmbeddedCache(None, {})
    red = RedisCache(RedisConfig(url="redis://127.0.0.1:1/0"), {})  # no connection is made
    assert isinstance(embedded, CacheBackend)
    assert isinstance(red, CacheBackend)
    for name in ("put_many", "get", "lookup", "peek", "keys", "stats", "flush", "clear", "close"):
        assert callable(getattr(red, name)), name
    assert all(set(row) == set(STAT_FIELDS) for row in embedded.stats().values())


def test_safe_names_are_kept() -> None:
    assert encode_key_part("BTC-USDT") == "BTC-USDT"
    assert encode_key_part("a.b_c-9") == "a.b_c-9"
    assert cache_key(PRICE, "binance", "BTC-USDT") == "price/binance/BTC-USDT"


def test_everything_else_is_percent_encoded() -> None:
    assert encode_key_part("../") == "..%2F"
    assert encode_key_part("a:b") == "a%3Ab"
    assert encode_key_part("a b*") == "a%20b%2A"
    assert encode_key_part("%41") == "%2541"
    assert encode_key_part("ü") == "%C3%BC"
    assert encode_key_part("~") == "%7E"
    assert cache_key(HISTORY, "x/y", "a:b", "candle/60") == "history/x%2Fy/a%3Ab/candle/60"


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        encode_key_part("")


def test_long_names_are_cut_and_hashed() -> None:
    a, b = encode_key_part("x" * 5000), encode_key_part("x" * 4999 + "y")
    assert a != b
    assert max(len(a), len(b)) <= MAX_KEY_PART
    assert "~" in a
    head = encode_key_part("ü" * 100).split("~")[0]  # cut between characters, not inside one
    assert head == "%C3%BC" * (len(head) // 6)
    assert decode_key_part(a).endswith("...")
    assert decode_key_part(encode_key_part("ü" * 100)) == "ü" * (len(head) // 6) + "..."


@given(st.text(min_size=1, max_size=300), st.text(min_size=1, max_size=300))
def test_encoding_is_injective_and_safe(x: str, y: str) -> None:
    ex, ey = encode_key_part(x), encode_key_part(y)
    assert (ex == ey) == (x == y)
    assert len(ex) <= MAX_KEY_PART
    assert set(ex) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-%~")
    if "~" not in ex:
        assert decode_key_part(ex) == x


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip(name: str) -> None:
    part = encode_key_part(name)
    assert not set(part) & set("/:* {}[]?\n")
    if len(name) < 1000:
        assert decode_key_part(part) == name


# -- config ---------------------------------------------------------------------------


def convert(data: dict[str, object]) -> RedisConfig:
    return msgspec.convert(data, RedisConfig, dec_hook=dec_hook)


def test_config_defaults_and_durations() -> None:
    cfg = convert({"url": "rediss://cache.internal:6380/2", "reconnect_base": "50ms", "version_ttl": "1d"})
    assert cfg.reconnect_base == 50_000_000
    assert cfg.version_ttl.seconds == 86_400
    assert RedisConfig().url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    "url", ["redis://:hunter2@127.0.0.1:6379/0", "redis://user:hunter2@h/0", "redis://h/0?password=hunter2"]
)
def test_password_in_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="secrets only from the environment") as err:
        convert({"url": url})
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "http://h"}, "url"),
        ({"key_prefix": ""}, "key_prefix"),
        ({"key_prefix": "a*"}, "key_prefix"),
        ({"batch": 0}, "batch"),
        ({"buffer_max": 0}, "buffer_max"),
        ({"tls_ca_file": "/ca.pem"}, "tls_ca_file"),
        ({"reconnect_base": "10s", "reconnect_cap": "1s"}, "reconnect_base"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises((ConfigError, msgspec.ValidationError), match=field):
        convert(data)


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="passwd"):
        convert({"passwd": "x"})


# -- versions, buffer, backoff, counters ---------------------------------------------------


@given(
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)),
)
def test_version_text_orders_like_tuples(a: tuple[int, int], b: tuple[int, int]) -> None:
    ta, tb = version_text(*a), version_text(*b)
    assert len(ta) == len(tb) == 40
    assert (ta < tb) == (a < b)
    assert parse_version(ta.encode()) == a


def w(key: str, v1: int, typ: str = PRICE) -> Write:
    return Write(typ, f"{typ}/v/{key}", v1, 0, f"{key}:{v1}".encode())


def test_buffer_keeps_the_newest_version_per_key() -> None:
    stats = RedisCacheStats()
    buf = WriteBuffer(10, stats)
    buf.add([w("a", 1), w("a", 3), w("a", 2), w("b", 1), w("a", 3)])
    # a was last replaced (a1 -> a3) before b arrived; collapsed writes do not reorder
    assert [(x.key, x.v1) for x in buf.head(10)] == [("price/v/a", 3), ("price/v/b", 1)]
    assert stats.get("buffer_collapsed", PRICE) == 3
    assert stats.buffered[PRICE] == 2
    assert stats.get("buffer_dropped", PRICE) == 0


def test_buffer_overflow_drops_the_least_recently_written_key_and_counts_it() -> None:
    stats = RedisCacheStats()
    buf = WriteBuffer(3, stats)
    buf.add([w("a", 1), w("b", 1), w("c", 1), w("a", 2), w("d", 1, HISTORY), w("e", 1)])
    assert [x.key.rsplit("/", 1)[1] for x in buf.head(10)] == ["a", "d", "e"]
    assert stats.get("buffer_dropped", PRICE) == 2  # b, then c
    assert stats.buffered == {PRICE: 2, HISTORY: 1}
    buf.remove(buf.head(2))
    assert len(buf) == 1
    assert stats.buffered == {PRICE: 1, HISTORY: 0}
    assert buf.drop_all() == {PRICE: 1}
    assert stats.get("buffer_dropped", PRICE) == 3


def test_buffer_can_refuse_instead_of_dropping() -> None:
    stats = RedisCacheStats()
    buf = WriteBuffer(2, stats, raise_when_full=True)
    with pytest.raises(BackpressureError, match="buffer_max"):
        buf.add([w("a", 1), w("b", 1), w("b", 2), w("c", 1)])
    assert len(buf) == 2
    assert stats.get("buffer_dropped", PRICE) == 0
    assert stats.buffered[PRICE] == 2


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    b = Backoff(0.1, 1.0, rng=lambda: 1.0)
    assert [b.failed(0.0) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert not b.ready(0.5)
    assert b.ready(1.0)
    b.succeeded()
    assert b.ready(0.0)
    low = Backoff(0.1, 1.0, rng=lambda: 0.0)
    assert low.failed(0.0) == pytest.approx(0.05)


def test_counters_are_exported_with_their_names() -> None:
    stats = RedisCacheStats()
    WriteBuffer(1, stats).add([w("a", 1), w("b", 1)])
    stats.set_up(1, False)

    class Collector:
        def collect(self) -> object:
            return stats.collect()

    registry = CollectorRegistry()
    registry.register(Collector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'ticktape_cache_buffer_dropped_total{type="price"} 1.0' in text
    assert 'ticktape_cache_buffered{type="price"} 1.0' in text
    assert "ticktape_cache_redis_up 0.0" in text
