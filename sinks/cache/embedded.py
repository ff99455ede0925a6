"""The embedded cache: latest values per key with per-type TTLs and LRU bounds.

Guarantees:

* **Replay-safe writes** (docs/architecture.md, "Delivery"): every entry carries a version ``(v1, v2)``
  (prices: ``(ts_event, seq)``; candles: ``(start, revision)``) and a write only lands if
  its version is newer. Versions outlive TTL expiry (an expired entry reads as a miss but
  still blocks older writes) and are persisted, so a replay never moves a value backwards,
  in this process or in a later one.
* **Bounded memory**: at most ``max_entries`` entries and ``max_bytes`` bytes (key +
  value) in memory; the least recently used entries are evicted and counted.
* **Persistence**: writes are flushed every ``flush_interval_ns`` to a SQLite file (WAL)
  with the same compare-and-set in SQL, so ``ticktape cache get`` and other processes
  see them; :meth:`EmbeddedCache.flush` (called before every recovery snapshot) returns
  once they are committed. With ``background=True`` (the flow's sinks) the SQLite writes
  run on a writer thread (:mod:`ticktape.sinks.base.background`); entries handed to it but not yet
  committed are *in flight* and every read consults them before the file, so versions
  never appear to go backwards. While the writer is still committing the previous flush,
  the next one waits and keeps collecting (the newest entry per key), so the caller does
  not wait for the disk and a key written many times meanwhile is written once (only an
  unwritten entry that must leave memory is handed over at once).

Thread-safe: one instance per file per process is shared by all workers (:func:`shared`).
Locks: ``_lock`` (memory) may be held while taking ``_inflight_lock`` or ``_db_lock``;
the writer thread takes only those two, one at a time, so a full queue cannot deadlock.
Hot-path reads of the file (versions of keys not in memory) use a second connection
under ``_lock``, so they never wait for the writer's transaction (WAL readers).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ticktape.infra.observability.crashpoints import declare, reach
from ticktape.sinks.base.background import BackgroundWriter
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.cache.api import TYPES, Entry, Write

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, type TEXT NOT NULL, value BLOB NOT NULL,
    v1 INTEGER NOT NULL, v2 INTEGER NOT NULL, expires_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
)"""
CRASH_UNCOMMITTED = declare("cache.uncommitted", "a flush of entries inside its open transaction")
CRASH_COMMITTED = declare("cache.committed", "a flush of entries committed")
_COUNTERS = ("hits", "misses", "writes", "stale_writes", "evictions", "expirations")
_STATS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cache_stats (
    type TEXT PRIMARY KEY, {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _COUNTERS)}
)"""
_UPSERT = """
INSERT INTO cache(key, type, value, v1, v2, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET type=excluded.type, value=excluded.value, v1=excluded.v1,
    v2=excluded.v2, expires_at=excluded.expires_at, updated_at=excluded.updated_at
WHERE excluded.v1 > cache.v1 OR (excluded.v1 = cache.v1 AND excluded.v2 > cache.v2)"""


class EmbeddedCache:
    """In-memory LRU with TTLs in front of a SQLite file (``path=None``: memory only).

    Time: a call's ``now_ns`` when given, else ``clock()`` (wall-clock ns, read once per
    call, not per write): it stamps TTL expiry and drives the ``flush_interval_ns`` timer.
    Tests pass a fake ``clock`` to move past a TTL or an interval without sleeping.
    """

    def __init__(
        self,
        path: Path | None,
        ttls_ns: dict[str, int],
        *,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        flush_interval_ns: int = 250_000_000,
        background: bool = False,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.clock = clock
        self.flush_interval_ns = flush_interval_ns
        self._dirty: dict[str, Entry] = {}  # written to memory, not yet to the file
        self._inflight: dict[str, Entry] = {}  # handed to the writer thread, not committed
        self._inflight_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._writer: BackgroundWriter[tuple[int, list[tuple[str, Entry]]]] | None = None
        self._last_flush = 0
        self.ttls = {t: ttls_ns.get(t, 0) for t in TYPES}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._mem: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.stale_writes: Counter[str] = Counter()
        self.evictions: Counter[str] = Counter()
        self.expirations: Counter[str] = Counter()
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None  # background mode: reads under _lock
        if path is not None:
            self._db = connect(path, synchronous="NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute(_STATS_SCHEMA)
            if background:
                self._writer = BackgroundWriter(self._write_rows, f"ticktape-cache-writer:{path.name}")
                self._read_db = connect(path, readonly=True)

    # -- writes -----------------------------------------------------------------
    def put_many(self, writes: Sequence[Write], now_ns: int | None = None) -> int:
        """Apply ``writes`` (newest version wins); returns how many landed in memory."""
        now = self.clock() if now_ns is None else now_ns
        landed: defaultdict[str, int] = defaultdict(int)
        stale: defaultdict[str, int] = defaultdict(int)
        expiry = {t: now + ttl for t, ttl in self.ttls.items()}
        entry_of = Entry._make
        with self._lock:
            mem, dirty = self._mem, self._dirty
            missing = [w.key for w in writes if w.key not in mem]
            persisted = self._persisted_versions(missing) if missing else {}
            delta = 0
            for typ, key, v1, v2, value in writes:  # per write: compares and dict operations only
                cur = mem.get(key)
                if cur is not None:
                    if v1 < cur.v1 or (v1 == cur.v1 and v2 <= cur.v2):
                        stale[typ] += 1
                        continue
                    delta -= len(cur.value)
                    mem.move_to_end(key)
                else:
                    old = persisted.get(key)
                    if old is not None and (v1, v2) <= old:
                        stale[typ] += 1
                        continue
                    delta += len(key)
                mem[key] = dirty[key] = entry_of((typ, value, v1, v2, expiry.get(typ, now)))
                delta += len(value)
                landed[typ] += 1
            self._bytes += delta
            self.writes.update(landed)
            self.stale_writes.update(stale)
            # A pending write evicted from memory must reach the file now: versions of
            # keys not in memory are read from the file, and must never go backwards.
            if self._evict() or (
                now - self._last_flush >= self.flush_interval_ns and not self._writer_busy()
            ):
                self._flush(now)
        return sum(landed.values())

    def flush(self) -> None:
        """Commit pending entries to the file (also started every ``flush_interval_ns``);
        returns once they are committed."""
        with self._lock:
            self._flush(self.clock())
            if self._writer is not None:
                self._writer.drain()

    def _writer_busy(self) -> bool:
        return self._writer is not None and self._writer.busy()

    def _flush(self, now: int) -> None:
        self._last_flush = now
        if self._db is None or not self._dirty:
            self._dirty.clear()
            return
        items = list(self._dirty.items())
        self._dirty.clear()
        if self._writer is None:
            self._write_rows((now, items))
            return
        with self._inflight_lock:
            self._inflight.update(items)
        self._writer.submit((now, items))

    def _write_rows(self, batch: tuple[int, list[tuple[str, Entry]]]) -> None:
        """Commit one flush (on the writer thread when there is one)."""
        now, items = batch
        rows = [(k, e.type, e.value, e.v1, e.v2, e.expires_at, now) for k, e in items]
        with self._db_lock:
            assert self._db is not None
            with self._db:
                self._db.executemany(_UPSERT, rows)
                reach(CRASH_UNCOMMITTED)
            reach(CRASH_COMMITTED)
        if self._writer is not None:
            with self._inflight_lock:
                inflight = self._inflight
                for key, entry in items:
                    if inflight.get(key) is entry:  # else a newer flush of the key is queued
                        del inflight[key]

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """Rows of a query on the file; the caller holds ``_lock``."""
        if self._read_db is not None:
            return self._read_db.execute(sql, params).fetchall()
        assert self._db is not None
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def _stored(self, key: str) -> Entry | None:
        """``key`` from the in-flight writes, else from the file (not from memory)."""
        with self._inflight_lock:
            entry = self._inflight.get(key)
        if entry is not None or self._db is None:
            return entry
        rows = self._read("SELECT type, value, v1, v2, expires_at FROM cache WHERE key = ?", (key,))
        return Entry(*rows[0]) if rows else None

    def _persisted_versions(self, keys: list[str]) -> dict[str, tuple[int, int]]:
        if self._db is None:
            return {}
        found: dict[str, tuple[int, int]] = {}
        with self._inflight_lock:
            for key in keys:
                entry = self._inflight.get(key)
                if entry is not None:
                    found[key] = (entry.v1, entry.v2)
        rest = [k for k in keys if k not in found]
        for i in range(0, len(rest), 500):
            chunk = rest[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, v1, v2 in self._read(f"SELECT key, v1, v2 FROM cache WHERE key IN ({marks})", chunk):
                found[key] = (v1, v2)
        return found

    def _evict(self) -> bool:
        """Evict least recently used entries; whether one of them was not flushed yet."""
        mem = self._mem
        pending = False
        while mem and (len(mem) > self.max_entries or self._bytes > self.max_bytes):
            key, entry = mem.popitem(last=False)
            self._bytes -= len(key) + len(entry.value)
            self.evictions[entry.type] += 1
            pending = pending or key in self._dirty
        return pending

    # -- reads --------------------------------------------------------------------
    def get(self, key: str, now_ns: int | None = None) -> bytes | None:
        """The fresh value of ``key`` or ``None`` (miss: absent, or older than its TTL)."""
        entry = self.lookup(key, now_ns)
        return entry.value if entry is not None else None

    def lookup(self, key: str, now_ns: int | None = None) -> Entry | None:
        now = self.clock() if now_ns is None else now_ns
        kind = key.split("/", 1)[0]
        with self._lock:
            entry = self._mem.get(key)
            if entry is None:
                entry = self._stored(key)
            if entry is None:
                self.misses[kind] += 1
                return None
            if entry.expires_at and now > entry.expires_at:
                self.misses[kind] += 1
                self.expirations[kind] += 1
                return None
            self.hits[kind] += 1
            if key in self._mem:
                self._mem.move_to_end(key)
            return entry

    def peek(self, key: str) -> Entry | None:
        """The stored entry even if expired, without touching statistics (for the CLI)."""
        with self._lock:
            entry = self._mem.get(key)
            return entry if entry is not None else self._stored(key)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            if self._db is not None:
                self.flush()
                rows = self._read(
                    "SELECT key FROM cache WHERE key >= ? AND key < ? ORDER BY key",
                    (prefix, prefix + "\uffff"),
                )
                return [r[0] for r in rows]
            return sorted(k for k in self._mem if k.startswith(prefix))

    def stats(self) -> dict[str, dict[str, float]]:
        """Per type: hits, misses, hit rate, writes, stale (refused) writes, evictions,
        expirations and entries in memory."""
        with self._lock:
            entries = Counter(e.type for e in self._mem.values())
            out: dict[str, dict[str, float]] = {}
            for t in TYPES:
                hits, misses = self.hits[t], self.misses[t]
                out[t] = {
                    "hits": hits, "misses": misses,
                    "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
                    "writes": self.writes[t], "stale_writes": self.stale_writes[t],
                    "evictions": self.evictions[t], "expirations": self.expirations[t],
                    "entries": entries[t],
                }  # fmt: skip
            return out

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def clear(self) -> int:
        with self._lock:
            n = len(self._mem)
            self._mem.clear()
            self._dirty.clear()  # else the next flush would write cleared entries back
            self._bytes = 0
            if self._writer is not None:
                self._writer.drain()
            if self._db is not None:
                with self._db_lock, self._db:
                    n = max(n, self._db.execute("DELETE FROM cache").rowcount)
            return n

    def persisted_summary(self, now_ns: int) -> dict[str, tuple[int, int, int]]:
        """Per type in the file: (entries, fresh entries, bytes of keys and values)."""
        if self._db is None:
            return {}
        self.flush()
        with self._db_lock:
            rows = self._db.execute(
                "SELECT type, count(*), sum(expires_at > ?), sum(length(key) + length(value)) FROM cache GROUP BY type",
                (now_ns,),
            ).fetchall()
        return {typ: (n, int(fresh or 0), int(size or 0)) for typ, n, fresh, size in rows}

    def persisted_counters(self) -> dict[str, dict[str, int]]:
        """Hit/miss/eviction counters accumulated by every process that used the file."""
        if self._db is None:
            return {}
        with self._db_lock:
            rows = self._db.execute(f"SELECT type, {', '.join(_COUNTERS)} FROM cache_stats").fetchall()
        return {row[0]: dict(zip(_COUNTERS, row[1:], strict=True)) for row in rows}

    def _save_counters(self) -> None:
        assert self._db is not None
        values = [(t, *(int(getattr(self, name)[t]) for name in _COUNTERS)) for t in TYPES]
        sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTERS)
        with self._db_lock, self._db:
            self._db.executemany(
                f"INSERT INTO cache_stats(type, {', '.join(_COUNTERS)}) VALUES (?, {', '.join('?' * len(_COUNTERS))})"
                f" ON CONFLICT(type) DO UPDATE SET {sets}",
                values,
            )
        for name in _COUNTERS:
            getattr(self, name).clear()

    def close(self) -> None:
        """Persist this process's counters and close the file."""
        with self._lock:
            if self._db is not None:
                self._flush(self.clock())
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                if self._read_db is not None:
                    self._read_db.close()
                    self._read_db = None
                self._save_counters()
                self._db.close()
                self._db = None


_shared: dict[Path, EmbeddedCache] = {}
_shared_lock = threading.Lock()


def shared(path: Path, ttls_ns: dict[str, int], max_entries: int, max_bytes: int) -> EmbeddedCache:
    """The process-wide cache for ``path`` (all Bytewax workers of a process share it)."""
    key = path.resolve()
    with _shared_lock:
        cache = _shared.get(key)
        if cache is None or cache._db is None:
            cache = _shared[key] = EmbeddedCache(
                path, ttls_ns, max_entries=max_entries, max_bytes=max_bytes, background=True
            )
        return cache


def release(path: Path) -> None:
    with _shared_lock:
        cache = _shared.pop(path.resolve(), None)
    if cache is not None:
        cache.close()
