"""The Redis cache's key layout: versions, the compare-and-set script, and finding,
measuring and deleting keys (``ticktape cache stats|clear``).

A value lives at ``<prefix><key>`` (a plain string, so any client can ``GET`` it) and its
version at ``<prefix><key>:ver``. ``<key>`` never contains ``:`` (it is escaped in venue and
symbol, :func:`ticktape.sinks.cache.api.encode_key_part`), so no value key ends in ``:ver``. A
version ``(v1, v2)`` is stored as two 20-digit numbers offset by 2**63
(:func:`version_text`): the script compares versions as strings, exactly, where Lua numbers
(doubles) would make nanosecond timestamps 1 ns apart tie.

Only keys of the cache layout under the configured prefix are ever touched: a value key
``<prefix><type>/...`` or its version key ``<prefix><type>/...:ver`` with ``<type>`` one of
``price``, ``metadata``, ``history``. Other keys under the prefix (the ``stats`` counters,
another application's data) are left alone; nothing uses ``KEYS`` or ``FLUSHDB``: keys are
found with ``SCAN`` (non-blocking, 1,000 per step) and deleted with ``UNLINK`` (freed in
the background). Connection errors propagate; :class:`~ticktape.sinks.cache.redis.backend.RedisCache` turns
them into :class:`~ticktape.schemas.errors.SinkError`.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from ticktape.sinks.cache.api import TYPES

if TYPE_CHECKING:
    import redis

VERSION_SUFFIX = ":ver"
STATS_KEY = "stats"
_STEP = 1000
_OFFSET = 2**63

#: KEYS: value key, version key per write. ARGV: TTLs (ms) of types 1..3, then version
#: TTLs of types 1..3, then per write one string: type (1 digit 1..3), :func:`version_text`
#: (40 digits), value. Returns one character per write: "1" written, "0" refused (the
#: stored version is >= the new one); one bulk string parses much faster than an array.
CAS_SCRIPT = """
local out = {}
for i = 1, #KEYS / 2 do
  local arg = ARGV[6 + i]
  local t, ver = tonumber(string.sub(arg, 1, 1)), string.sub(arg, 2, 41)
  local cur = redis.call('GET', KEYS[2 * i])
  if cur and cur >= ver then
    out[i] = '0'
  else
    local ttl, vttl = tonumber(ARGV[t]), tonumber(ARGV[t + 3])
    if ttl > 0 then
      redis.call('SET', KEYS[2 * i - 1], string.sub(arg, 42), 'PX', ttl)
    else
      redis.call('SET', KEYS[2 * i - 1], string.sub(arg, 42))
    end
    if vttl > 0 then redis.call('SET', KEYS[2 * i], ver, 'PX', vttl) else redis.call('SET', KEYS[2 * i], ver) end
    out[i] = '1'
  end
end
return table.concat(out)
"""
TYPE_INDEX = {t: str(i) for i, t in enumerate(TYPES, 1)}
WRITTEN = ord("1")


def ttl_args(ttls_ns: dict[str, int], version_ttl_ns: int) -> list[int]:
    """The script's ARGV header: TTLs in ms per type, then version TTLs per type (at least
    the value's, so a version always outlives its value; 0 = no expiry)."""

    def ms(ns: int) -> int:
        return max(1, -(-ns // 1_000_000)) if ns > 0 else 0

    ttls = [ms(ttls_ns.get(t, 0)) for t in TYPES]
    vttl = ms(version_ttl_ns)
    return ttls + [0 if not vttl or not ttl else max(vttl, ttl) for ttl in ttls]


def version_text(v1: int, v2: int) -> str:
    """``(v1, v2)`` as 40 digits whose string order is the tuple order (any int64s)."""
    return f"{v1 + _OFFSET:020d}{v2 + _OFFSET:020d}"


def parse_version(text: bytes) -> tuple[int, int]:
    """The inverse of :func:`version_text`."""
    return int(text[:20]) - _OFFSET, int(text[20:40]) - _OFFSET


def glob_escape(text: str) -> str:
    """``text`` as a literal in a ``SCAN MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def type_of(key: str) -> str:
    return key.split("/", 1)[0]


def scan(client: redis.Redis[bytes], prefix: str, under: str = "") -> list[str]:
    """Cache keys (without ``prefix``; version keys keep their suffix) starting with
    ``prefix + under``."""
    found = []
    n = len(prefix)
    for raw in client.scan_iter(match=glob_escape(prefix + under) + "*", count=_STEP):
        key = raw.decode("utf-8", "surrogateescape")[n:]
        if "/" in key and type_of(key) in TYPES:
            found.append(key)
    return found


def summary(client: redis.Redis[bytes], prefix: str) -> dict[str, tuple[int, int, int]]:
    """Per type: (entries: keys with a stored version, whether or not their value expired;
    fresh: values stored; bytes of value keys and values)."""
    found = scan(client, prefix)
    versions = Counter(type_of(k) for k in found if k.endswith(VERSION_SUFFIX))
    fresh = [k for k in found if not k.endswith(VERSION_SUFFIX)]
    sizes: list[int] = []
    for i in range(0, len(fresh), _STEP):
        pipe = client.pipeline(transaction=False)
        for k in fresh[i : i + _STEP]:
            pipe.strlen(prefix + k)
        sizes += pipe.execute()
    values: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for k, n in zip(fresh, sizes, strict=True):
        values[type_of(k)] += 1
        size[type_of(k)] += len(prefix) + len(k) + int(n)
    return {t: (max(versions[t], values[t]), values[t], size[t]) for t in versions | values}


def delete_all(client: redis.Redis[bytes], prefix: str) -> int:
    """Unlink every cache key under ``prefix``; the number of entries (value and version
    key pairs) deleted."""
    keys = scan(client, prefix)
    for i in range(0, len(keys), _STEP):
        client.unlink(*(prefix + k for k in keys[i : i + _STEP]))
    return len({k.removesuffix(VERSION_SUFFIX) for k in keys})


def load_counters(client: redis.Redis[bytes], prefix: str) -> dict[str, dict[str, int]]:
    """Counters per type saved by every process (hash ``<prefix>stats``)."""
    out: dict[str, dict[str, int]] = {}
    for field, n in client.hgetall(prefix + STATS_KEY).items():
        typ, _, name = field.decode().partition(".")
        out.setdefault(typ, {})[name] = int(n)
    return out


def save_counters(client: redis.Redis[bytes], prefix: str, counts: dict[str, dict[str, int]]) -> None:
    """Add ``counts`` (per type, per counter) to the saved counters."""
    if not counts:
        return
    pipe = client.pipeline(transaction=False)
    for typ, row in counts.items():
        for name, n in row.items():
            pipe.hincrby(prefix + STATS_KEY, f"{typ}.{name}", n)
    pipe.execute()
