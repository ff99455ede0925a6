"""ticktape.schemas.symbols: per-venue normalization to BASE-QUOTE."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ticktape.schemas import symbols
from ticktape.schemas.symbols import (
    KRAKEN_ALIASES,
    QUOTES,
    clear_cache,
    normalize,
    normalize_uncached,
    register,
    split_concatenated,
)

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.mark.parametrize(
    ("venue", "raw", "expected"),
    [
        ("binance", "BTCUSDT", "BTC-USDT"),
        ("binance", "btcusdt", "BTC-USDT"),
        ("binance", "BNBFDUSD", "BNB-FDUSD"),
        ("binance", "ETHTUSD", "ETH-TUSD"),
        ("binance", "ETHBTC", "ETH-BTC"),
        ("binance", "XRPETH", "XRP-ETH"),
        ("binance", "BTCTRY", "BTC-TRY"),
        ("binance", "USDTUSD", "USDT-USD"),  # explicit override: not USD-TUSD
        ("binance", "BTC/USDT", "BTC-USDT"),
        ("binance", "FOO", "FOO"),  # unknown form: uppercase as given
        ("binance", "USDT", "USDT"),  # a bare quote has no base
        ("bybit", "BTCUSDT", "BTC-USDT"),
        ("bybit", "ETHUSDC", "ETH-USDC"),
        ("kraken", "XBT/USD", "BTC-USD"),
        ("kraken", "BTC/USD", "BTC-USD"),
        ("kraken", "XDG/EUR", "DOGE-EUR"),
        ("kraken", "XBTUSDT", "BTC-USDT"),
        ("kraken", "XXBTZUSD", "BTC-USD"),
        ("kraken", "XETHZEUR", "ETH-EUR"),
        ("kraken", "XETHXXBT", "ETH-BTC"),
        ("kraken", "USDTZUSD", "USDT-USD"),
        ("kraken", "XDGUSD", "DOGE-USD"),
        ("kraken", "XTZUSD", "XTZ-USD"),  # Tezos, not a legacy X prefix
        ("kraken", "SOLUSD", "SOL-USD"),
        ("coinbase", "BTC-USD", "BTC-USD"),
        ("coinbase", "eth-usd", "ETH-USD"),
        ("freqtrade", "XRP_ETH", "XRP-ETH"),
        ("generic", "eth/usd", "ETH-USD"),
        ("generic", " btc_usd ", "BTC-USD"),
        ("generic", "AAPL", "AAPL"),
    ],
)
def test_normalize(venue: str, raw: str, expected: str) -> None:
    assert normalize(venue, raw) == expected
    assert normalize(venue, raw) == expected  # second call is served by the cache
    assert normalize_uncached(venue, raw) == expected


def test_cache_is_used_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize("binance", "ETHUSDT") == "ETH-USDT"
    assert symbols._caches["binance"]["ETHUSDT"] == "ETH-USDT"
    monkeypatch.setattr(symbols, "_MAX_CACHE", 2)
    for raw in ("AUSDT", "BUSDT", "CUSDT"):
        normalize("binance", raw)
    assert len(symbols._caches["binance"]) <= 2


def test_register_overrides_rules() -> None:
    assert normalize("binance", "LUNAUST") == "LUNA-UST"
    register("binance", "lunaust", "LUNA-USTC")
    try:
        assert normalize("binance", "LUNAUST") == "LUNA-USTC"
    finally:
        del symbols._overrides["binance"]["LUNAUST"]


def test_split_concatenated() -> None:
    assert split_concatenated("BTCUSDT") == ("BTC", "USDT")
    assert split_concatenated("NOPE") is None


def _ambiguous(pair: str, quote: str) -> bool:
    """Whether a longer known quote is also a suffix of ``pair`` (then the longest wins)."""
    return any(len(q) > len(quote) and len(pair) > len(q) and pair.endswith(q) for q in QUOTES)


@given(st.text(alphabet=ALNUM, min_size=1, max_size=10), st.sampled_from(QUOTES))
def test_concatenated_pairs_round_trip(base: str, quote: str) -> None:
    pair = base + quote
    assume(not _ambiguous(pair, quote) and pair != "USDTUSD")
    assert normalize("binance", pair) == f"{base}-{quote}"
    assert normalize("bybit", pair.lower()) == f"{base}-{quote}"


@given(
    st.text(alphabet=ALNUM, min_size=1, max_size=10),
    st.text(alphabet=ALNUM, min_size=1, max_size=10),
    st.sampled_from(["/", "_", "-"]),
)
def test_separated_pairs_round_trip(base: str, quote: str, sep: str) -> None:
    assert normalize("generic", f"{base}{sep}{quote}".lower()) == f"{base}-{quote}"
    assert normalize("coinbase", f"{base}-{quote}") == f"{base}-{quote}"
    expected = f"{KRAKEN_ALIASES.get(base, base)}-{KRAKEN_ALIASES.get(quote, quote)}"
    assert normalize("kraken", f"{base}/{quote}") == expected
