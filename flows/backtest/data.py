"""Market data for a backtest, as columns, merged chronologically across symbols.

Inputs: trades (history files, Parquet, or the job's archive: read with
:mod:`ticktape.flows.backfill.inputs`), candles (the Parquet candle store, or built here
from the trades) and quotes (CSV/Parquet with ``ts, symbol, bid, ask, bid_size,
ask_size``). Everything becomes NumPy columns; no per-tick objects.

**The merge order** (deterministic, whatever the files' order): by event time; at equal
times candles first (a candle is delivered at its window's end, before any trade at that
instant, which belongs to the next window), then quotes, then trades; then by symbol
name; then by input order (file order, or the archive's arrival order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ticktape.schemas.errors import InputError
from ticktape.sinks.candles.store import CandleStore

CANDLE, QUOTE, TRADE = 0, 1, 2
_SIDES = {"buy": 1, "sell": -1}


@dataclass
class Trades:
    ts: np.ndarray  # int64 ns
    sym: np.ndarray  # int32 index into names
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    side: np.ndarray  # int8: 1 buy, -1 sell, 0 unknown

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Candles:
    ts: np.ndarray  # window end (delivery time)
    sym: np.ndarray
    start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trades: np.ndarray
    interval: int  # seconds

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Quotes:
    ts: np.ndarray
    sym: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class MarketData:
    """Columns per kind; ``names[i]`` is the symbol of index ``i`` (names sorted)."""

    names: list[str]
    trades: Trades | None = None
    candles: Candles | None = None
    quotes: Quotes | None = None
    candle_symbols: frozenset[int] = frozenset()  # symbols replayed from candles only

    @property
    def span(self) -> tuple[int, int]:
        starts, ends = [], []
        for part in (self.trades, self.candles, self.quotes):
            if part is not None and len(part):
                starts.append(int(part.start.min()) if isinstance(part, Candles) else int(part.ts[0]))
                ends.append(int(part.ts.max()))
        if not starts:
            raise InputError("no market data to replay (check the inputs, --symbols and the time range)")
        return min(starts), max(ends)

    def events(self) -> int:
        return sum(len(p) for p in (self.trades, self.candles, self.quotes) if p is not None)


def trades_from_tables(
    tables: dict[str, pa.Table], *, symbols: list[str], since: int | None, until: int | None
) -> tuple[list[str], Trades]:
    """Trades of ``tables`` (the backfill input tables, in input order), filtered, sorted
    by (time, symbol, input order)."""
    parts = [
        t.select(["symbol", "price", "size", "side", "ts_event"])
        for _, t in sorted(tables.items())
        if t.num_rows
    ]
    if not parts:
        raise InputError("no trades in the inputs")
    table = pa.concat_tables(parts)
    mask = None
    for cond in (
        pc.greater_equal(table["ts_event"], since) if since is not None else None,
        pc.less(table["ts_event"], until) if until is not None else None,
        pc.is_in(table["symbol"], pa.array(symbols)) if symbols else None,
    ):
        if cond is not None:
            mask = cond if mask is None else pc.and_(mask, cond)
    if mask is not None:
        table = table.filter(mask)
    if not table.num_rows:
        raise InputError("no trades left after the --symbols / --from / --to filters")
    sym_col = table["symbol"].combine_chunks()
    names = sorted(pc.unique(sym_col).to_pylist())
    sym = np.asarray(pc.index_in(sym_col, value_set=pa.array(names)).to_numpy(zero_copy_only=False), np.int32)
    ts = np.asarray(table["ts_event"].to_numpy(), np.int64)
    side_words = table["side"].to_pylist()
    side = np.fromiter((_SIDES.get(s, 0) for s in side_words), np.int8, len(side_words))
    order = np.lexsort((np.arange(len(ts)), sym, ts))
    return names, Trades(
        ts[order], sym[order], np.asarray(table["price"].to_numpy(), np.float64)[order],
        np.asarray(table["size"].to_numpy(), np.float64)[order], side[order],
    )  # fmt: skip


def candles_from_trades(trades: Trades, interval_s: int) -> Candles:
    """OHLCV per symbol and ``interval_s`` window from the trades (windows without trades
    have no candle); open/close are the first/last trade in replay order."""
    iv = interval_s * 1_000_000_000
    order = np.lexsort((np.arange(len(trades)), trades.sym))  # per symbol, replay order kept
    sym, ts = trades.sym[order], trades.ts[order]
    price, size = trades.price[order], trades.size[order]
    win = ts // iv
    new = np.ones(len(ts), bool)
    new[1:] = (sym[1:] != sym[:-1]) | (win[1:] != win[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(ts)) - 1
    start = win[first] * iv
    out = Candles(
        ts=start + iv, sym=sym[first].astype(np.int32), start=start, open=price[first],
        high=np.maximum.reduceat(price, first), low=np.minimum.reduceat(price, first), close=price[last],
        volume=np.add.reduceat(size, first), trades=(last - first + 1).astype(np.int64), interval=interval_s,
    )  # fmt: skip
    return _sorted_candles(out)


def _sorted_candles(c: Candles) -> Candles:
    order = np.lexsort((c.sym, c.ts))
    return Candles(
        c.ts[order], c.sym[order], c.start[order], c.open[order], c.high[order], c.low[order], c.close[order],
        c.volume[order], c.trades[order], c.interval,
    )  # fmt: skip


def candles_from_store(
    store: CandleStore, *, interval_s: int, since: int | None, until: int | None, symbols: list[str]
) -> tuple[list[str], Candles]:
    """Stored candles of one interval as columns, the latest revision of each window (the
    candle store's own rule: highest revision, then most trades, then latest), vectorized.
    Names are the symbols (``SYMBOL@venue`` when a symbol has candles of several venues)."""
    table = store.read_table(interval=interval_s, since=since, until=until)
    if table is not None and symbols:
        table = table.filter(pc.is_in(table["symbol"], pa.array(symbols)))
    if table is None or not table.num_rows:
        raise InputError(
            f"no stored candles of {interval_s}s for the symbols and time range (run a backfill first)"
        )
    table = table.sort_by([
        ("venue", "ascending"), ("symbol", "ascending"), ("start", "ascending"),
        ("revision", "descending"), ("trades", "descending"), ("ts_final", "descending"),
    ])  # fmt: skip
    venue = np.asarray(table["venue"].to_numpy(zero_copy_only=False), object)
    symbol = np.asarray(table["symbol"].to_numpy(zero_copy_only=False), object)
    start = np.asarray(table["start"].cast(pa.int64()).to_numpy(), np.int64)
    keep = np.ones(len(start), bool)
    keep[1:] = (venue[1:] != venue[:-1]) | (symbol[1:] != symbol[:-1]) | (start[1:] != start[:-1])
    idx = np.flatnonzero(keep)
    pairs = sorted(set(zip(venue[idx].tolist(), symbol[idx].tolist(), strict=True)))
    several = {s for _, s in pairs if sum(1 for _, t in pairs if t == s) > 1}
    label = {(v, s): f"{s}@{v}" if s in several else s for v, s in pairs}
    names = sorted(set(label.values()))
    index = {n: i for i, n in enumerate(names)}
    sym = np.array(
        [index[label[(v, s)]] for v, s in zip(venue[idx].tolist(), symbol[idx].tolist(), strict=True)],
        np.int32,
    )

    def col(name: str, dtype: type) -> np.ndarray:
        return np.asarray(
            table[name].cast(pa.int64() if dtype is np.int64 else pa.float64()).to_numpy(), dtype
        )[idx]

    c = Candles(
        ts=col("end", np.int64), sym=sym, start=start[idx], open=col("open", np.float64), high=col("high", np.float64),
        low=col("low", np.float64), close=col("close", np.float64), volume=col("volume", np.float64),
        trades=col("trades", np.int64), interval=interval_s,
    )  # fmt: skip
    return names, _sorted_candles(c)


def read_quotes(path: Path, names: list[str] | None = None) -> tuple[list[str], Quotes]:
    """Quotes from CSV or Parquet with columns ``ts`` (int ns), ``symbol``, ``bid``,
    ``ask``, ``bid_size``, ``ask_size``."""
    if not path.is_file():
        raise InputError(f"quotes file not found: {path}")
    try:
        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
        missing = [
            c for c in ("ts", "symbol", "bid", "ask", "bid_size", "ask_size") if c not in table.column_names
        ]
        if missing:
            raise InputError(f"{path.name}: missing quote columns {missing}")
        syms = table["symbol"].cast(pa.string()).to_pylist()
        ts = np.asarray(table["ts"].cast(pa.int64()).to_numpy(), np.int64)
        cols = {
            c: np.asarray(table[c].cast(pa.float64()).to_numpy(), np.float64)
            for c in ("bid", "ask", "bid_size", "ask_size")
        }
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise InputError(
            f"{path.name}: not a quotes table (ts ns, symbol, bid, ask, bid_size, ask_size): {exc}"
        ) from None
    if any(s is None for s in syms):
        raise InputError(f"{path.name}: a quote without a symbol")
    all_names = sorted(set(syms) | set(names or []))
    index = {n: i for i, n in enumerate(all_names)}
    sym = np.array([index[s] for s in syms], np.int32)
    order = np.lexsort((np.arange(len(ts)), sym, ts))
    return all_names, Quotes(
        ts[order],
        sym[order],
        cols["bid"][order],
        cols["ask"][order],
        cols["bid_size"][order],
        cols["ask_size"][order],
    )


def merged_order(data: MarketData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ts, kind, sym, row)`` of every event in replay order (the module doc's merge)."""
    ts, kind, sym, row = [], [], [], []
    for k, part in ((CANDLE, data.candles), (QUOTE, data.quotes), (TRADE, data.trades)):
        if part is not None and len(part):
            n = len(part)
            ts.append(part.ts)
            kind.append(np.full(n, k, np.int8))
            sym.append(part.sym)
            row.append(np.arange(n, dtype=np.int64))
    t, k_, s, r = (np.concatenate(x) for x in (ts, kind, sym, row))
    order = np.lexsort((r, s, k_, t))
    return t[order], k_[order], s[order], r[order]
