"""The Redis cache backend: latest values per key, compare-and-set in one Lua script.

Key layout (``key_prefix`` default ``ticktape:``; ``<key>`` as in :mod:`ticktape.sinks.cache.api`,
e.g. ``ticktape:price/binance/BTC-USDT``; details in :mod:`ticktape.sinks.cache.redis.keys`)::

    <prefix><key>        string: the value (JSON)   PX = the type's TTL (price 1s, metadata 1h, history 1d)
    <prefix><key>:ver    string: the version        PX = max(TTL, version_ttl) (default 7d)
    <prefix>stats        hash "<type>.<counter>"    hit/miss/write counters of every process

Writes (:meth:`RedisCache.put_many`): one ``EVALSHA`` of ``CAS_SCRIPT`` per ``batch`` writes
(declared keys; redis-py loads the script again after a NOSCRIPT). Per write the script
reads the version key and sets value, version and TTLs only if the new version is greater,
so an older ``(ts_event, seq)`` or candle ``(start, revision)`` never overwrites a newer
one. The version key outlives the value on purpose: a replay after the value expired is
still refused. ``version_ttl`` bounds what dead symbols cost (0: never expire); a symbol
silent for longer may take an older value again, until its TTL. A Redis that loses its
data (no persistence, FLUSHALL, ``maxmemory`` eviction) forgets versions too. A TTL of 0
means no expiry here (the embedded cache treats 0 as expired at once).

Unit of parallelism: one instance (one connection, one buffer) per sink partition; a key
always maps to the same partition. The partitions of a process share one
:class:`~ticktape.sinks.cache.redis.buffer.RedisCacheStats`.
Delivery: idempotent by version (effectively once over at-least-once input). Resume
state: none. What is lost, when: with ``on_unavailable="buffer"`` only writes dropped from a
full buffer (:class:`~ticktape.sinks.cache.redis.buffer.WriteBuffer`) or still buffered at ``close()``,
each counted in ``ticktape_cache_buffer_dropped_total{type}``; with ``"fail"``, nothing: a
full buffer raises ``BackpressureError`` and ``flush()`` (before every snapshot) raises
``SinkError`` while writes wait, so the job restarts from its last snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ticktape.schemas.errors import MissingDependencyError, SinkError
from ticktape.sinks.cache.api import TYPES, Entry, Write
from ticktape.sinks.cache.redis import keys as redis_keys
from ticktape.sinks.cache.redis.buffer import PERSISTED, Backoff, RedisCacheStats, WriteBuffer
from ticktape.sinks.cache.redis.config import PASSWORD_ENV, RedisConfig, address, connect
from ticktape.sinks.cache.redis.keys import (
    TYPE_INDEX,
    VERSION_SUFFIX,
    WRITTEN,
    parse_version,
    type_of,
    version_text,
)

try:
    import redis
    from redis import exceptions as rx
except ImportError as exc:  # pragma: no cover - the optional dependency guard
    raise MissingDependencyError("redis", "redis") from exc

log = logging.getLogger("ticktape.cache.redis")

__all__ = ["RedisCache", "RedisConfig"]

T = TypeVar("T")
#: Errors that mean "Redis is unreachable now": buffer and retry with backoff.
UNREACHABLE: tuple[type[Exception], ...] = (OSError, rx.ConnectionError, rx.TimeoutError)
#: Connection errors that waiting will not cure (a wrong or missing password).
REFUSED: tuple[type[Exception], ...] = (rx.AuthenticationError, rx.AuthorizationError)


class RedisCache:
    """:class:`~ticktape.sinks.cache.api.CacheBackend` on Redis (see the module docstring).

    ``clock``: monotonic seconds, read once per call (not per write) to time the
    reconnection backoff; tests pass a fake one to step past a backoff without sleeping.
    Value expiry is Redis's own clock (the ``PX`` TTLs), not this one.
    """

    def __init__(
        self,
        cfg: RedisConfig,
        ttls_ns: dict[str, int],
        *,
        client: redis.Redis[bytes] | None = None,
        stats: RedisCacheStats | None = None,
        per_key: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.prefix = cfg.key_prefix
        self._owns_client = client is None
        self.client = connect(cfg) if client is None else client
        self.counters = stats if stats is not None else RedisCacheStats()
        self._ttl_args = redis_keys.ttl_args(ttls_ns, int(cfg.version_ttl))
        self.per_key = per_key  # one EVALSHA per write, pipelined: measured slower, kept for the bench
        self._script = self.client.register_script(redis_keys.CAS_SCRIPT)
        self._lock = threading.RLock()
        self._buffer = WriteBuffer(
            cfg.buffer_max, self.counters, raise_when_full=cfg.on_unavailable == "fail"
        )
        self._backoff = Backoff(cfg.reconnect_base.seconds, cfg.reconnect_cap.seconds)
        self._down_since: float | None = None
        self._failed_at = float("-inf")

    # -- writes -------------------------------------------------------------------
    def put_many(self, writes: Sequence[Write]) -> int:
        """Compare-and-set ``writes``; how many landed now. While Redis is unreachable they
        wait in the buffer (and land with a later call, :meth:`flush` or :meth:`close`)."""
        with self._lock:
            if self._buffer or not self._ready():
                self._buffer.add(writes)
                return self._drain() if self._ready() else 0
            return self._send(writes)

    def _ready(self) -> bool:
        """Whether to try Redis now: the backoff says so, or another cache of this
        process reached Redis after this one last failed (the other partitions follow
        the first one that reconnects instead of sleeping out their own backoff)."""
        return self._backoff.ready(self.clock()) or self.counters.last_success > self._failed_at

    def _send(self, writes: Sequence[Write]) -> int:
        landed = 0
        for i in range(0, len(writes), self.cfg.batch):
            chunk = writes[i : i + self.cfg.batch]
            try:
                results = self._apply(chunk)
            except UNREACHABLE as exc:
                self._failed(exc)
                self._buffer.add(writes[i:])  # outcome unknown: re-sending is idempotent
                return landed
            landed += self._count(chunk, results)
        self._recovered()
        return landed

    def _drain(self) -> int:
        landed = 0
        while self._buffer:
            chunk = self._buffer.head(self.cfg.batch)
            try:
                results = self._apply(chunk)
            except UNREACHABLE as exc:
                self._failed(exc)
                return landed
            self._buffer.remove(chunk)
            landed += self._count(chunk, results)
        self._recovered()
        return landed

    def _apply(self, chunk: Sequence[Write]) -> list[bool]:
        """Run the script over ``chunk``; per write whether it landed."""
        keys: list[str] = []
        args: list[bytes] = []
        for w in chunk:
            key = self.prefix + w.key
            keys += (key, key + VERSION_SUFFIX)
            args.append((TYPE_INDEX[w.type] + version_text(w.v1, w.v2)).encode() + w.value)
        try:
            if not self.per_key:
                return [r == WRITTEN for r in self._script(keys=keys, args=[*self._ttl_args, *args])]
            pipe = self.client.pipeline(transaction=False)
            for j, arg in enumerate(args):
                self._script(keys=keys[2 * j : 2 * j + 2], args=[*self._ttl_args, arg], client=pipe)
            return [r == b"1" for r in pipe.execute()]
        except rx.ResponseError as exc:  # e.g. WRONGTYPE: a foreign value at one of our keys
            raise SinkError(f"redis {self._where()}: cache write refused: {exc}") from exc

    def _count(self, chunk: Sequence[Write], results: list[bool]) -> int:
        written: Counter[str] = Counter()
        stale: Counter[str] = Counter()
        for w, ok in zip(chunk, results, strict=True):
            (written if ok else stale)[w.type] += 1
        self.counters.add("writes", written)
        self.counters.add("stale_writes", stale)
        return sum(written.values())

    def _probe(self) -> None:
        try:
            self.client.ping()
        except UNREACHABLE as exc:
            self._failed(exc)
        else:
            self._recovered()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, REFUSED):
            raise SinkError(
                f"redis {self._where()}: {exc} (the password is read from {PASSWORD_ENV[0]})"
            ) from exc
        now = self.clock()
        self._failed_at = now
        first = self._down_since is None
        if first:
            self._down_since = now
        delay = self._backoff.failed(now)
        self.counters.set_up(id(self), False)
        level = logging.WARNING if first else logging.DEBUG
        log.log(
            level, "redis %s unreachable (%s); buffering writes, retry in %.2fs", self._where(), exc, delay
        )

    def _recovered(self) -> None:
        self.counters.last_success = self.clock()
        if self._down_since is not None:
            log.info("redis %s reachable again after %.1fs", self._where(), self.clock() - self._down_since)
            self.counters.set_up(id(self), True, reconnected=True)
            self._down_since = None
        self._backoff.succeeded()

    def _where(self) -> str:
        return address(self.cfg.url)

    def flush(self) -> None:
        """Deliver buffered writes now if the backoff allows. Raises ``SinkError`` with
        ``on_unavailable="fail"`` when writes still wait (the snapshot must not pass them)."""
        with self._lock:
            if self._down_since is not None and self._ready():
                if self._buffer:
                    self._drain()
                else:  # an idle partition: probe, so it reports "up" as soon as Redis is back
                    self._probe()
            if self._buffer and self.cfg.on_unavailable == "fail":
                raise SinkError(
                    f"redis {self._where()} unreachable: {len(self._buffer)} cache writes are waiting"
                )

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def available(self) -> bool:
        return self._down_since is None

    # -- reads ------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except UNREACHABLE as exc:
            raise SinkError(f"redis {self._where()}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        entry = self.lookup(key)
        return entry.value if entry is not None else None

    def lookup(self, key: str) -> Entry | None:
        entry, version_known = self._read(key)
        typ = type_of(key)
        if entry is None:
            self.counters.add("misses", {typ: 1})
            if version_known:  # the version outlived the value: it expired
                self.counters.add("expirations", {typ: 1})
            return None
        self.counters.add("hits", {typ: 1})
        return entry

    def peek(self, key: str) -> Entry | None:
        """The entry if Redis still holds it (Redis deletes values when they expire)."""
        return self._read(key)[0]

    def version(self, key: str) -> tuple[int, int] | None:
        """The stored version of ``key`` (kept after the value expired)."""
        raw = self._call(self.client.get, self.prefix + key + VERSION_SUFFIX)
        return parse_version(raw) if raw is not None else None

    def _read(self, key: str) -> tuple[Entry | None, bool]:
        """(the entry if its value is stored, whether a version is stored)."""
        full = self.prefix + key
        pipe = self.client.pipeline(transaction=True)  # value, TTL and version of one moment
        pipe.get(full)
        pipe.pttl(full)
        pipe.get(full + VERSION_SUFFIX)
        value, pttl, ver = self._call(pipe.execute)
        if value is None or ver is None:
            return None, ver is not None
        expires = time.time_ns() + pttl * 1_000_000 if pttl >= 0 else 0
        return Entry(type_of(key), value, *parse_version(ver), expires), True

    def keys(self, prefix: str = "") -> list[str]:
        found = self._call(redis_keys.scan, self.client, self.prefix, prefix)
        return sorted(k for k in found if not k.endswith(VERSION_SUFFIX))

    def stats(self) -> dict[str, dict[str, float]]:
        """This process's counters per type; ``entries``: values stored in Redis now."""
        entries = Counter(type_of(k) for k in self.keys())
        out: dict[str, dict[str, float]] = {}
        for t in TYPES:
            row: dict[str, float] = {name: self.counters.get(name, t) for name in PERSISTED}
            hits, misses = row["hits"], row["misses"]
            row["hit_rate"] = hits / (hits + misses) if hits + misses else 0.0
            row["entries"] = entries[t]
            out[t] = row
        return out

    def persisted_summary(self, now_ns: int) -> dict[str, tuple[int, int, int]]:
        """Per type: (entries incl. expired values whose version is kept, fresh values,
        bytes of keys and values). ``now_ns`` is unused: Redis expires values itself."""
        return self._call(redis_keys.summary, self.client, self.prefix)

    def persisted_counters(self) -> dict[str, dict[str, int]]:
        return self._call(redis_keys.load_counters, self.client, self.prefix)

    def clear(self) -> int:
        """Delete this cache's value and version keys (nothing else) and the buffer."""
        with self._lock:
            self._buffer.clear()
            return self._call(redis_keys.delete_all, self.client, self.prefix)

    def close(self) -> None:
        """Deliver what waits (one last try), count the rest as dropped, save counters."""
        with self._lock:
            if self._buffer:
                self._drain()
            lost = self._buffer.drop_all()
            if lost:
                log.error("redis %s unreachable at close: %d buffered cache writes dropped %s",
                          self._where(), sum(lost.values()), dict(lost))  # fmt: skip
            try:
                self._call(redis_keys.save_counters, self.client, self.prefix, self.counters.drain_unsaved())
            except SinkError as exc:
                log.warning("cache counters not saved: %s", exc)
            if self._owns_client:
                self.client.close()
            if lost and self.cfg.on_unavailable == "fail":
                raise SinkError(
                    f"redis {self._where()} unreachable at close: {dict(lost)} cache writes dropped"
                )
