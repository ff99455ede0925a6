"""Scenario ``redis``: cache writes into a real redis-server through :class:`RedisCache`.

ticktape: :meth:`RedisCache.put_many` (compare-and-set in one Lua script per ``batch``
writes: version check, value + version keys with TTLs per write). Baseline: a plain pipelined
``SET key value PX ttl`` of the same keys and values, ``batch`` commands per round trip, no
versions (what a naive cache sink does; it lets a replay move prices backwards). Both run
in the same process against the same server (started here with
:class:`ticktape.infra.devstack.services.RedisServer` on a free 127.0.0.1 port), so the ratio is the cost of
replay safety as seen from the job. It can exceed 1: redis-py encodes commands and parses
replies in Python, so one script call per ``batch`` writes costs the client less than
``batch`` pipelined commands, while the server does more per write (a Lua loop with GET +
2 SET, about 10 us, against about 1 us per SET). ``extra`` also reports the other CAS shape, one ``EVALSHA`` per write in a
pipeline (``per_key``), and a replay of already-stored versions (every write refused).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable

import msgspec

from ticktape.infra.bench.common import Measurement, median
from ticktape.infra.devstack.services import RedisServer
from ticktape.schemas.records import PriceUpdate
from ticktape.sinks.cache.api import HISTORY, METADATA, PRICE, Write, cache_key
from ticktape.sinks.cache.redis.backend import RedisCache, RedisConfig
from ticktape.sinks.cache.redis.config import connect

S = 1_000_000_000
T0 = 1_700_000_000 * S
TTLS = {PRICE: 1 * S, METADATA: 3600 * S, HISTORY: 86_400 * S}
BATCH = 1000


def bench_writes(n: int, keys: int) -> list[list[Write]]:
    """``n`` price writes over ``keys`` symbols in batches of distinct keys, versions rising
    (what ``cache_writes`` produces per sink batch)."""
    enc = msgspec.json.Encoder()
    batches: list[list[Write]] = []
    batch: list[Write] = []
    for i in range(n):
        rnd, k = divmod(i, keys)
        symbol = f"S{k:05d}-USDT"
        ts = T0 + rnd * 1_000_000
        u = PriceUpdate(
            "binance",
            symbol,
            100.0 + rnd * 0.01,
            0.5,
            "buy",
            str(i),
            ts,
            ts,
            ts + 1,
            ts + 2,
            rnd,
            "bench/0",
            i,
        )
        batch.append(Write(PRICE, cache_key(PRICE, "binance", symbol), ts, rnd, enc.encode(u)))
        if len(batch) == min(BATCH, keys):
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def _timed(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def redis_scenario(writes: int = 200_000, repeats: int = 3, keys: int = 5_000) -> Measurement:
    """Median writes/s: CAS through RedisCache vs plain pipelined SET, same run."""
    batches = bench_writes(writes, keys)
    n = sum(len(b) for b in batches)
    with tempfile.TemporaryDirectory(prefix="ticktape-bench-") as tmp, RedisServer(tmp) as server:
        server_client = connect(RedisConfig(url=server.url))
        runs = itertools.count()

        def fresh_cache(per_key: bool = False) -> RedisCache:
            server_client.flushall()  # the bench owns this server: start each run empty
            cfg = RedisConfig(url=server.url, key_prefix=f"bench{next(runs)}:", batch=BATCH)
            return RedisCache(cfg, TTLS, client=server_client, per_key=per_key)

        def put_all(cache: RedisCache) -> None:
            for b in batches:
                cache.put_many(b)

        def cas(per_key: bool = False) -> float:
            cache = fresh_cache(per_key)
            return _timed(lambda: put_all(cache), n)

        def plain_set() -> float:
            server_client.flushall()
            ttl_ms = TTLS[PRICE] // 1_000_000

            def run() -> None:
                for b in batches:
                    pipe = server_client.pipeline(transaction=False)
                    for w in b:
                        pipe.set("plain:" + w.key, w.value, px=ttl_ms)
                    pipe.execute()

            return _timed(run, n)

        def replay() -> float:
            cache = fresh_cache()
            put_all(cache)
            return _timed(lambda: put_all(cache), n)  # every write is refused as stale

        try:
            # interleave the shapes so drift on a shared host hits all of them alike
            samples: dict[str, list[float]] = {"cas": [], "set": [], "per_key": [], "replay": []}
            fns: dict[str, Callable[[], float]] = {
                "cas": cas, "set": plain_set, "per_key": lambda: cas(per_key=True), "replay": replay,
            }  # fmt: skip
            for fn in fns.values():
                fn()  # warm-up
            for _ in range(repeats):
                for name, fn in fns.items():
                    samples[name].append(fn())
        finally:
            server_client.flushall()
            server_client.close()
    return Measurement(
        scenario="redis",
        unit="writes/s",
        value=median(samples["cas"]),
        baseline_name="plain pipelined SET",
        baseline=median(samples["set"]),
        samples=samples["cas"],
        baseline_samples=samples["set"],
        extra={
            "writes": n,
            "keys": keys,
            "batch": BATCH,
            "cas_per_key_evalsha_writes_per_s": median(samples["per_key"]),
            "cas_per_key_samples": samples["per_key"],
            "cas_replay_refused_writes_per_s": median(samples["replay"]),
            "cas_replay_samples": samples["replay"],
        },
    )
