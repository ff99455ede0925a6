"""Hostile input for the fuzz/property harness (tests/unit/test_hostile_input.py).

Hypothesis strategies over the values that broke the job before (issue 13): extreme
floats (subnormals, infinities, NaN, -0.0, 1e308), huge, negative and non-numeric ids,
timestamps beyond int64 nanoseconds, deep nesting, huge messages and strings with Rich
markup, terminal escapes, NUL, lone surrogates and path tricks. Messages are built by
mutating a real sample of each wire format (``tests/data/venues``), so they reach deep
into each decoder rather than failing at the first byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.support.data import VENUES
from ticktape.schemas.history import HistorySpec, open_history
from ticktape.schemas.venues import Decoder

#: Named regression values (issue 13's corpus and relatives).
POISON_FLOATS = (1e308, 1e300, -1e308, 5e-324, 1e-320, -0.0, 2.0**64, 1e19, float("inf"), float("nan"))
POISON_INTS = (10**30, 9_999_999_999, -1, 2**63, 2**63 - 1, 2**64, 10**23, -(2**63) - 1, 10**19)
POISON_TEXT = (
    "",
    "[red]boom[/red]",
    "[link=http://127.0.0.1/x]click[/link]",
    "\x1b[31mred\x1b[0m\x1b]0;title\x07",
    "a\x00b",
    "../../etc/passwd",
    "x" * 10_000,
    "\u202eevil",
    "\ud800",
    "\x9b31m",
    "BTC-USDT\n",
)

hostile_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from(POISON_FLOATS),
)
hostile_ints = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from(POISON_INTS))
hostile_text = st.one_of(st.text(max_size=40), st.sampled_from(POISON_TEXT))
#: A number as JSON text: also forms json cannot produce (1e400 -> inf, NaN tokens).
number_tokens = st.one_of(
    hostile_floats.map(repr),
    hostile_ints.map(str),
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 5000, "0x10", "1_000", '"1e308"']),
)


def deep(n: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    """``n`` levels of nesting."""
    return opener * n + closer * n


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), hostile_ints, hostile_text, st.floats(allow_nan=False))
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=max_leaves,
    )


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


_MARK = "\x00HOSTILE\x00"


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: _replace(v, rest, value) if k == head else v for k, v in doc.items()}
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(doc)]


@st.composite
def mutated(draw: st.DrawFn, sample: Any) -> bytes:
    """``sample`` (a decoded JSON document) with one to three values replaced by hostile
    ones (numbers also as raw tokens: 1e400, NaN, 5,000 digits), or nesting, or junk."""
    doc = sample
    raw_tokens: dict[str, str] = {}
    for i in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        kind = draw(st.sampled_from(["value", "token", "deep", "text"]))
        if kind == "value":
            value: Any = draw(json_values())
        elif kind == "token":
            value = f"{_MARK}{i}"
            raw_tokens[json.dumps(value)] = draw(number_tokens)
        elif kind == "deep":
            value = f"{_MARK}{i}"
            raw_tokens[json.dumps(value)] = deep(draw(st.sampled_from([50, 1000, 5000]))).decode()
        else:
            value = draw(hostile_text)
        doc = _replace(doc, path, value)
    text = json.dumps(doc)
    for marker, token in raw_tokens.items():
        text = text.replace(marker, token)
    data = text.encode("utf-8", "surrogatepass")
    cut = draw(st.sampled_from([None, None, None, len(data) // 2, 1]))
    return data if cut is None else data[:cut]


def sample(name: str) -> Any:
    """A recorded venue message (``tests/data/venues/<name>``) as a JSON document."""
    return json.loads((VENUES / name).read_text())


GENERIC_SAMPLE = {
    "venue": "nyse", "symbol": "037833100", "id_type": "cusip", "price": "189.84", "size": 100,
    "side": "buy", "trade_id": 7, "ts_event": 1_775_572_202_789_012_000,
}  # fmt: skip
GENERIC_PLAIN = {
    "venue": "x", "symbol": "BTC-USDT", "price": 100.0, "size": 1.0, "side": "sell", "trade_id": 5,
    "ts_event": 1_700_000_000_000_000_000,
}  # fmt: skip

#: Wire format -> the samples its decoder is fuzzed from.
FORMAT_SAMPLES: dict[str, list[Any]] = {
    "binance": [sample("binance_trade_stream.json"), sample("binance_agg_trade_stream.json")],
    "binance-trade": [sample("binance_trade_stream.json")],
    "binance-agg": [sample("binance_agg_trade_stream.json")],
    "coinbase": [sample("coinbase_ws_market_trades.json")],
    "kraken": [sample("kraken_ws_trade_update.json")],
    "bybit": [sample("bybit_ws_public_trade.json")],
    "generic": [GENERIC_SAMPLE, GENERIC_PLAIN],
}


def history_decoders(directory: Path) -> dict[str, tuple[Decoder, list[Any]]]:
    """Row decoders of every history format (from small files written to ``directory``)
    with a sample row of each: freqtrade JSON rows, CSV rows (as a JSON list of cells,
    joined by the fuzzer) and Kraken REST rows."""
    directory.mkdir(parents=True, exist_ok=True)
    ft = directory / "XRP_ETH-trades.json"
    ft_row = [1_700_000_000_000, "123", None, "buy", 0.0001, 10.0, 0.001]
    ft.write_text(json.dumps([ft_row]))
    kr = directory / "kraken.json"
    kr_row = ["105944.2", "0.00027625", 1_700_000_000.123, "b", "l", "", 10218208]
    kr.write_text(json.dumps({"error": [], "result": {"XXBTZUSD": [kr_row], "last": "1"}}))
    cv = directory / "trades.csv"
    cv.write_text("timestamp,price,amount,side,id\n1700000000000,1.5,2,buy,1\n")
    out: dict[str, tuple[Decoder, list[Any]]] = {}
    for name, path, spec, row in (
        ("freqtrade", ft, HistorySpec(format="freqtrade"), ft_row),
        ("kraken-rest", kr, HistorySpec(format="kraken-rest"), kr_row),
        ("csv", cv, HistorySpec(format="csv", symbol="BTC-USD"), ["1700000000000", "1.5", "2", "buy", "1"]),
    ):
        _, decode = open_history(path, spec)
        out[name] = (decode, [row])
    return out


def csv_row(cells: Any) -> bytes:
    """A CSV row from a (mutated) list of cells; anything else as its JSON text."""
    if isinstance(cells, list):
        return ",".join(json.dumps(c) if not isinstance(c, str) else c for c in cells).encode(
            "utf-8", "surrogatepass"
        )
    return json.dumps(cells).encode()


RowMaker = Callable[[Any], bytes]
