"""Order-book checksums venues send with their updates.

Kraken (WS v1 and v2): CRC32 (unsigned) of the top 10 asks (ascending) then the top 10
bids (descending), each level as its price text then its size text with the decimal point
removed and leading zeros stripped, all concatenated. The text is the venue's own (with
its precision), which is why books of checksum venues keep the level text.
"""

from __future__ import annotations

from zlib import crc32

from ticktape.schemas.books.book import L2Book

KRAKEN_LEVELS = 10


def _kraken_part(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum_of(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """The Kraken checksum of these level texts (asks best first, then bids best first)."""
    parts = [_kraken_part(p) + _kraken_part(q) for p, q in asks[:KRAKEN_LEVELS]]
    parts += [_kraken_part(p) + _kraken_part(q) for p, q in bids[:KRAKEN_LEVELS]]
    return crc32("".join(parts).encode("ascii"))


def kraken_checksum(book: L2Book) -> int:
    """The Kraken checksum of ``book`` (which must keep level text)."""
    return kraken_checksum_of(book.asks.top_texts(KRAKEN_LEVELS), book.bids.top_texts(KRAKEN_LEVELS))
