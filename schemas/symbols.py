"""Per-venue symbol normalization to ``BASE-QUOTE``.

``normalize(venue, raw)`` is called once per message, so results are cached per venue
(a plain dict lookup after the first sight of a symbol). Rules:

- ``binance``/``bybit``: concatenated pairs (``BTCUSDT``) are split at the longest known
  quote-asset suffix (``BTC-USDT``); lowercase stream names (``btcusdt``) work too.
- ``kraken``: WS v2 ``XBT/USD`` and REST pair names (``XBTUSDT``, legacy ``XXBTZUSD``,
  ``XETHZEUR``) with asset aliases (``XBT`` -> ``BTC``, ``XDG`` -> ``DOGE``).
- ``coinbase``: already ``BTC-USD``.
- anything else (``freqtrade`` file names ``XRP_ETH``, generic feeds): uppercase, with
  ``/`` or ``_`` separators turned into ``-``.

A form that no rule recognizes is returned uppercased as given; the validator decides
whether it is acceptable.
"""

from __future__ import annotations

from typing import Final

#: Quote assets recognized at the end of concatenated pairs (Binance, Bybit).
QUOTES: Final = (
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "USDE", "DAI", "PAX", "UST",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "SOL", "DOT",
    "EUR", "GBP", "TRY", "BRL", "JPY", "AUD", "USD", "RUB", "UAH", "ZAR", "NGN", "PLN",
    "RON", "ARS", "MXN", "COP", "CZK", "IDRT", "BIDR",
)  # fmt: skip
#: Quote assets of Kraken REST pair names (after alias resolution of ``XBT``).
KRAKEN_QUOTES: Final = (
    "USDT", "USDC", "USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "XBT", "ETH", "DAI",
    "PYUSD",
)  # fmt: skip
#: Kraken asset codes that differ from the common ticker.
KRAKEN_ALIASES: Final = {"XBT": "BTC", "XDG": "DOGE", "XXBT": "BTC", "XXDG": "DOGE"}
#: Quote part of legacy 8-character Kraken pairs such as ``XXBTZUSD``.
_KRAKEN_LEGACY_QUOTES: Final = frozenset(("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "XBT", "ETH"))
_SEPARATORS: Final = ("/", "_", "-")
_MAX_CACHE: Final = 65_536

_BY_LENGTH: Final = tuple(sorted(QUOTES, key=len, reverse=True))
_KRAKEN_BY_LENGTH: Final = tuple(sorted(KRAKEN_QUOTES, key=len, reverse=True))
_caches: dict[str, dict[str, str]] = {}
_overrides: dict[str, dict[str, str]] = {
    # Longest-suffix splitting would read this as USD-TUSD (a Binance.US pair).
    "binance": {"USDTUSD": "USDT-USD"},
    "bybit": {"USDTUSD": "USDT-USD"},
}


def split_concatenated(pair: str, quotes: tuple[str, ...] = _BY_LENGTH) -> tuple[str, str] | None:
    """Split ``BTCUSDT`` into ``("BTC", "USDT")`` at the longest quote suffix in ``quotes``
    (ordered longest first) that leaves a non-empty base; ``None`` if none matches."""
    for quote in quotes:
        if len(pair) > len(quote) and pair.endswith(quote):
            return pair[: -len(quote)], quote
    return None


def _kraken_asset(code: str) -> str:
    return KRAKEN_ALIASES.get(code, code)


def _split_separated(text: str) -> tuple[str, str] | None:
    for sep in _SEPARATORS:
        if sep in text:
            base, _, quote = text.partition(sep)
            return (base, quote) if base and quote else None
    return None


def _binance(text: str) -> str:
    if any(sep in text for sep in _SEPARATORS):
        return _generic(text)
    parts = split_concatenated(text)
    return f"{parts[0]}-{parts[1]}" if parts else text


def _kraken(text: str) -> str:
    parts = _split_separated(text)
    if parts is None and (
        len(text) == 8 and text[0] in "XZ" and text[4] in "XZ" and text[5:] in _KRAKEN_LEGACY_QUOTES
    ):
        parts = text[1:4], text[5:]
    if parts is None:
        parts = split_concatenated(text, _KRAKEN_BY_LENGTH)
        if parts is None:
            return text
        base, quote = parts
        if len(base) == 5 and base[4] in "XZ" and quote in _KRAKEN_LEGACY_QUOTES:
            parts = base[:4], quote  # mixed legacy form: USDTZUSD -> USDT-USD
    return f"{_kraken_asset(parts[0])}-{_kraken_asset(parts[1])}"


def _generic(text: str) -> str:
    return text.replace("/", "-").replace("_", "-")


_RULES: Final = {
    "binance": _binance,
    "bybit": _binance,
    "kraken": _kraken,
    "coinbase": _generic,
}


def register(venue: str, raw: str, symbol: str) -> None:
    """Declare an explicit normalization (for pairs the rules split wrongly)."""
    _overrides.setdefault(venue.lower(), {})[raw.strip().upper()] = symbol
    _caches.clear()


def normalize_uncached(venue: str, raw: str) -> str:
    """:func:`normalize` without the cache (for tests and one-off use)."""
    text = raw.strip().upper()
    v = venue.lower()
    override = _overrides.get(v)
    if override is not None and text in override:
        return override[text]
    return _RULES.get(v, _generic)(text)


def normalize(venue: str, raw: str) -> str:
    """``raw`` as ``BASE-QUOTE`` following ``venue``'s conventions (cached per venue)."""
    cache = _caches.get(venue)
    if cache is None:
        cache = _caches[venue] = {}
    else:
        hit = cache.get(raw)
        if hit is not None:
            return hit
    if len(cache) >= _MAX_CACHE:  # a feed of garbage symbols must not grow memory forever
        cache.clear()
    result = cache[raw] = normalize_uncached(venue, raw)
    return result


def clear_cache() -> None:
    """Forget cached normalizations (tests; after changing :data:`QUOTES`)."""
    _caches.clear()
