"""What every cache backend offers, and the one way venue/symbol text enters a cache key.

:class:`CacheBackend` is implemented by :class:`ticktape.sinks.cache.embedded.EmbeddedCache` (memory + SQLite)
and :class:`ticktape.sinks.cache.redis.backend.RedisCache`; the sinks, the warmer (:mod:`ticktape.sinks.cache.warm`)
and ``ticktape cache get|stats|warm|clear`` only use this interface.

Key layout (shared by both backends; Redis prepends its ``key_prefix``)::

    price/<venue>/<symbol>                       latest PriceUpdate      version (ts_event, seq)
    metadata/<venue>/<symbol>                    source coordinates      version (ts_event, seq)
    history/<venue>/<symbol>/candle/<seconds>    latest candle           version (start, revision)

``<venue>`` and ``<symbol>`` are :func:`encode_key_part` of the raw names: ``[A-Za-z0-9._-]``
stays as it is, every other character becomes ``%XX`` per UTF-8 byte (so ``/``, ``:``,
``*``, ``%``, spaces and braces never reach a key raw), and a name whose encoding is longer
than :data:`MAX_KEY_PART` is cut and suffixed with ``~`` plus 128 bits of its SHA-256
(``~`` is always escaped otherwise, so a cut name never equals an uncut one). The encoding
is injective: two different names never share a key.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable
from urllib.parse import unquote

#: The value types; each has its own TTL.
PRICE, METADATA, HISTORY = "price", "metadata", "history"
TYPES = (PRICE, METADATA, HISTORY)


class Write(NamedTuple):
    """One write of ``value`` under ``key``; it lands only if ``(v1, v2)`` is newer than the
    stored version."""

    type: str
    key: str
    v1: int
    v2: int
    value: bytes


class Entry(NamedTuple):
    """A stored value, its version and when it expires (ns since the epoch)."""

    type: str
    value: bytes
    v1: int
    v2: int
    expires_at: int


def cache_key(kind: str, venue: str, symbol: str, suffix: str = "") -> str:
    """``price/<venue>/<symbol>`` (+ ``/<suffix>``); the layout shared with Redis
    (module doc). Venue and symbol pass through :func:`encode_key_part`."""
    key = f"{kind}/{encode_key_part(venue)}/{encode_key_part(symbol)}"
    return f"{key}/{suffix}" if suffix else key


#: Longest encoded venue or symbol inside a key; longer ones are cut and hashed.
MAX_KEY_PART = 200
_HASH_HEX = 32
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_SAFE = re.compile(r"[A-Za-z0-9._-]+")

#: Statistics every backend reports per type (``stats()``).
STAT_FIELDS = ("hits", "misses", "hit_rate", "writes", "stale_writes", "evictions", "expirations", "entries")


def encode_key_part(text: str) -> str:
    """``text`` (a venue or symbol) as it appears inside a cache key; see the module doc.

    Raises ``ValueError`` for an empty name (it would make ``price//X`` keys)."""
    return _encode(text)


@functools.lru_cache(maxsize=65_536)
def _encode(text: str) -> str:
    if not text:
        raise ValueError("cache key part: expected a non-empty venue or symbol, got ''")
    if len(text) <= MAX_KEY_PART and _SAFE.fullmatch(text):
        return text  # the hot path: normalized symbols like BTC-USDT
    pieces = [
        ch if ch in _SAFE_CHARS else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in text
    ]
    out = "".join(pieces)
    if len(out) <= MAX_KEY_PART:
        return out
    budget, head = MAX_KEY_PART - _HASH_HEX - 1, []
    for piece in pieces:  # cut between characters, never inside one's escapes
        budget -= len(piece)
        if budget < 0:
            break
        head.append(piece)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    return f"{''.join(head)}~{digest}"


def decode_key_part(part: str) -> str:
    """The name behind an encoded key part (for display). A cut name (``...~<hash>``)
    cannot be restored: its readable head is returned with ``...`` instead of the hash."""
    head, cut, _ = part.partition("~")
    text = unquote(head, encoding="utf-8", errors="surrogatepass")
    return f"{text}..." if cut else text


@runtime_checkable
class CacheBackend(Protocol):
    """A latest-value cache with per-type TTLs and replay-safe versions.

    A write lands only if its ``(v1, v2)`` is newer than the stored version, also after the
    stored value expired (versions outlive values). ``get``/``lookup`` count a hit or a miss
    for the key's type; ``peek`` counts nothing.
    """

    def put_many(self, writes: Sequence[Write]) -> int:
        """Apply ``writes``; the number that landed (newer than what was stored)."""
        ...

    def get(self, key: str) -> bytes | None:
        """The fresh value of ``key``, or ``None`` (a miss)."""
        ...

    def lookup(self, key: str) -> Entry | None:
        """The fresh entry of ``key``, or ``None`` (a miss)."""
        ...

    def peek(self, key: str) -> Entry | None:
        """The stored entry, even if expired when the backend still holds it; no statistics."""
        ...

    def keys(self, prefix: str = "") -> list[str]:
        """Stored keys starting with ``prefix``, sorted."""
        ...

    def stats(self) -> dict[str, dict[str, float]]:
        """Per type: the :data:`STAT_FIELDS` of this process (``entries``: stored now)."""
        ...

    def persisted_summary(self, now_ns: int) -> dict[str, tuple[int, int, int]]:
        """Per type in the store: (entries, fresh entries, bytes of keys and values)."""
        ...

    def persisted_counters(self) -> dict[str, dict[str, int]]:
        """Per type: counters accumulated by every process that used the store."""
        ...

    def flush(self) -> None:
        """Make accepted writes durable in the store (called before recovery snapshots)."""
        ...

    def clear(self) -> int:
        """Delete every entry of this cache (and nothing else); the number deleted."""
        ...

    def close(self) -> None:
        """Flush, persist this process's counters and release connections/files."""
        ...
