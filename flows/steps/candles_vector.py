"""Vectorized candles for backfills (Arrow compute + numpy).

Produces exactly the candles the streaming steps (``ticktape.flows.steps.shard`` +
``ticktape.flows.steps.candles``) leave behind for the same trades in the same arrival order:
open/close by ``(ts_event, trade_no, trade_id)``, volume/notional/buy/sell as exact sums of
``floor(x * 2**64)`` (four int64 limbs of 32 bits per value: two words of the integer part
and two of the fraction, so no bit depends on summation order and no sum of up to 2**31
values overflows; values are within :mod:`ticktape.schemas.limits`), duplicates dropped as
the dedupe window drops them, trades later than the revision horizon rejected, and each
window's revision counted as streaming would emit it. Input the streaming steps would
reject with an id dead letter (``STALE_ID``, ``ID_JUMP``, ``KEY_LIMIT``) is left to them
(:func:`admit` returns ``None``). ``ts_final`` is the wall clock, as in streaming.

Strings (venue, symbol, source partition, side) are turned into dictionary codes once,
and the multi-key sort runs in Arrow's C++ kernels, so no per-row Python runs.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ticktape.flows.steps.candles import SCALE_BITS, vwap_of
from ticktape.schemas.records import BUY, SELL, Candle

NS = 1_000_000_000
_TWO32 = float(2**32)
_MIN = np.iinfo(np.int64).min


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes (int64) and the dictionary of a string column."""
    encoded = pc.dictionary_encode(
        pa.chunked_array([column]) if isinstance(column, pa.Array) else column
    ).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


Limbs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _limbs(x: np.ndarray) -> Limbs:
    """floor(x * 2**64) as H * 2**96 + L * 2**64 + F1 * 2**32 + F2, each limb below 2**32
    (exact for 0 <= x < 2**64: scaling by powers of two and floor are exact)."""
    whole = np.floor(x)
    high = np.floor(whole / _TWO32)
    low = whole - high * _TWO32
    frac = (x - whole) * _TWO32
    f1 = np.floor(frac)
    f2 = np.floor((frac - f1) * _TWO32)
    return high.astype(np.int64), low.astype(np.int64), f1.astype(np.int64), f2.astype(np.int64)


class Prepared:
    """Columns as numpy arrays plus one ordering by (series, ts_event, trade_no, trade_id),
    shared by :func:`admit` and :func:`candles_from_table` (a stable radix sort by series
    when each series is already in time order, the usual case; else a full sort)."""

    def __init__(self, table: pa.Table) -> None:
        self.n = table.num_rows
        venue, self.venues = _codes(table.column("venue"))
        symbol, self.symbols = _codes(table.column("symbol"))
        self.n_sym = max(len(self.symbols), 1)
        self.series = venue * self.n_sym + symbol
        self.ts = pc.cast(table.column("ts_event"), pa.int64()).to_numpy()
        self.trade_no = table.column("trade_no").to_numpy().astype(np.int64)
        self.trade_id = table.column("trade_id")
        self.price = table.column("price").to_numpy()
        self.size = table.column("size").to_numpy()
        side = table.column("side")
        self.buy = pc.equal(side, BUY).to_numpy(zero_copy_only=False)
        self.sell = pc.equal(side, SELL).to_numpy(zero_copy_only=False)
        self.src = (
            _codes(table.column("src"))[0] if "src" in table.column_names else np.zeros(self.n, np.int64)
        )
        small = (
            self.series.astype(np.int16) if self.series.size and self.series.max() < 2**15 else self.series
        )
        self.by_series = np.argsort(small, kind="stable")  # arrival order within each series
        s, t, no = self.series[self.by_series], self.ts[self.by_series], self.trade_no[self.by_series]
        same = s[1:] == s[:-1]
        self.ids_increasing = bool(np.all(~same | (no[1:] > no[:-1])))
        in_order = np.all(~same | (t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (no[1:] > no[:-1])))
        if in_order:
            self.order = self.by_series
        else:
            keys = pa.table({"s": self.series, "t": self.ts, "no": self.trade_no, "id": self.trade_id})
            self.order = pc.sort_indices(keys, [(k, "ascending") for k in ("s", "t", "no", "id")]).to_numpy()

    def name(self, series: int) -> tuple[str, str]:
        return self.venues[series // self.n_sym], self.symbols[series % self.n_sym]


def candles_from_table(
    table: pa.Table, intervals_ns: tuple[int, ...], *, offset_ns: int = 0, ts_final: int | None = None
) -> list[Candle]:
    """Candles of every (venue, symbol, interval, window) in ``table`` (all rows count).

    Columns used: venue, symbol, price, size, side, trade_id, trade_no, ts_event.
    """
    if table.num_rows == 0:
        return []
    return _candles(Prepared(table), None, intervals_ns, offset_ns, ts_final)


def _candles(
    prep: Prepared,
    keep: np.ndarray | None,
    intervals_ns: tuple[int, ...],
    offset_ns: int,
    ts_final: int | None,
) -> list[Candle]:
    order = prep.order if keep is None else prep.order[keep[prep.order]]
    if not len(order):
        return []
    series, ts, price, size = prep.series[order], prep.ts[order], prep.price[order], prep.size[order]
    size_limbs = _limbs(size)
    buy, sell = prep.buy[order], prep.sell[order]
    limbs = [
        size_limbs,
        _limbs(price * size),
        tuple(limb * buy for limb in size_limbs),  # same limbs, masked
        tuple(limb * sell for limb in size_limbs),
    ]
    series_change = np.ones(len(ts), dtype=bool)
    series_change[1:] = series[1:] != series[:-1]
    final = time.time_ns() if ts_final is None else ts_final
    unit = 2**SCALE_BITS
    out: list[Candle] = []
    for interval in intervals_ns:
        start = (ts - offset_ns) // interval * interval + offset_ns
        change = series_change.copy()
        change[1:] |= start[1:] != start[:-1]
        firsts = np.flatnonzero(change)
        lasts = np.append(firsts[1:], len(ts)) - 1
        highs = np.maximum.reduceat(price, firsts).tolist()
        lows = np.minimum.reduceat(price, firsts).tolist()
        vol, notl, buys, sells = (_limb_sums(limb, firsts) for limb in limbs)
        first_ids = pc.take(prep.trade_id, pa.array(order[firsts])).to_pylist()
        last_ids = pc.take(prep.trade_id, pa.array(order[lasts])).to_pylist()
        opens, closes = price[firsts].tolist(), price[lasts].tolist()
        starts, sers = start[firsts].tolist(), series[firsts].tolist()
        counts = (lasts - firsts + 1).tolist()
        seconds = interval // NS
        for g in range(len(firsts)):
            v, n, s = vol[g], notl[g], starts[g]
            venue, symbol = prep.name(sers[g])
            out.append(Candle(
                venue, symbol, seconds, s, s + interval, opens[g], highs[g], lows[g], closes[g],
                v / unit, n / unit, vwap_of(n, v, lows[g], highs[g], closes[g]), counts[g], buys[g] / unit, sells[g] / unit,
                first_ids[g], last_ids[g], 0, final,
            ))  # fmt: skip
    return out


def _limb_sums(limbs: tuple[np.ndarray, ...], starts: np.ndarray) -> list[int]:
    """Exact per-group sums of floor(x * 2**64) as Python ints."""
    high, low, f1, f2 = (np.add.reduceat(limb, starts).tolist() for limb in limbs)
    return [
        (h << (SCALE_BITS + 32)) + (lo << SCALE_BITS) + (a << 32) + b
        for h, lo, a, b in zip(high, low, f1, f2, strict=True)
    ]


class Admission(NamedTuple):
    """Which rows the streaming steps would accept, and each window's final revision."""

    accepted: np.ndarray  # bool per input row
    duplicates: int
    late_rejected: int
    revisions: dict[tuple[str, str, int, int], int]  # (venue, symbol, interval_s, start) -> revision


def _running_max_within(
    values: np.ndarray, groups: np.ndarray, *, exclusive: bool, order: np.ndarray | None = None
) -> np.ndarray:
    """Per-row running max of ``values`` within its group, in row order (``exclusive``:
    over earlier rows only; the first row of a group gets int64 min). ``order`` is a
    stable sort of ``groups`` when the caller has one."""
    if order is None:
        if groups.size and groups.min() == groups.max():  # one group
            run = np.maximum.accumulate(values)
            return np.concatenate(([_MIN], run[:-1])) if exclusive else run
        order = np.argsort(groups, kind="stable")
    out = np.empty(len(values), dtype=np.int64)
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, bounds):
        run = np.maximum.accumulate(values[rows])
        if exclusive:
            run = np.concatenate(([_MIN], run[:-1]))
        out[rows] = run
    return out


def admit(
    prep: Prepared,
    intervals_ns: tuple[int, ...],
    *,
    grace_ns: int,
    horizon_ns: int,
    window: int,
    offset_ns: int = 0,
    max_id_jump: int = 0,
    max_keys: int = 0,
) -> Admission | None:
    """Emulate, vectorized, what the streaming keyed step does with the prepared rows (in
    arrival order; ``src`` = source partition): drop duplicates (numeric trade ids: the
    first occurrence wins), reject trades later than the revision horizon, and count
    revisions per window. Returns ``None`` when only the streaming path is exact
    (repeated non-numeric ids, a symbol fed by several partitions, an id the streaming
    step rejects: ``window`` or more below the running high-water mark, more than
    ``max_id_jump`` above it, all digits beyond int64; more keys than ``max_keys``).
    """
    n, series, src, ts, trade_no = prep.n, prep.series, prep.src, prep.ts, prep.trade_no
    if src.min() != src.max() and len(np.unique(series * (int(src.max()) + 1) + src)) != len(
        np.unique(series)
    ):
        return None  # a symbol on several partitions: per-partition watermarks interact
    if max_keys and len(np.unique(series)) > max_keys:
        return None  # some shard may reach its key bound (KEY_LIMIT)
    numeric = trade_no >= 0
    keep = np.ones(n, dtype=bool)
    if not numeric.all():
        text = ~numeric & pc.not_equal(prep.trade_id, "").to_numpy(zero_copy_only=False)
        if text.any() and pc.any(pc.ascii_is_decimal(pc.filter(prep.trade_id, pa.array(text)))).as_py():
            return None  # all-digit ids beyond int64: ID_JUMP on symbols with numeric ids
        if text.any():
            pairs = pa.table({"s": series[text], "id": pc.filter(prep.trade_id, pa.array(text))})
            if pairs.group_by(["s", "id"]).aggregate([]).num_rows != int(text.sum()):
                return None
    if max_id_jump and numeric.all() and prep.ids_increasing:  # each id's hwm: the one before it
        ids, ser = trade_no[prep.by_series], series[prep.by_series]
        if np.any((ser[1:] == ser[:-1]) & (ids[1:] - ids[:-1] > max_id_jump)):
            return None  # possible ID_JUMP rejections
    if numeric.any() and not (numeric.all() and prep.ids_increasing):
        idx = np.arange(n)
        order = np.lexsort((idx, trade_no, series))
        repeat = np.zeros(n, dtype=bool)
        repeat[1:] = (series[order][1:] == series[order][:-1]) & (trade_no[order][1:] == trade_no[order][:-1])
        dup = np.zeros(n, dtype=bool)
        dup[order[repeat]] = True
        hwm = _running_max_within(
            np.where(numeric, trade_no, _MIN), series, exclusive=True, order=prep.by_series
        )
        seen = numeric & (hwm != _MIN)
        if np.any(seen & (hwm - trade_no >= window)):
            return None  # STALE_ID rejections
        if max_id_jump and np.any(seen & (trade_no - hwm > max_id_jump)):
            return None  # possible ID_JUMP rejections
        keep &= ~(numeric & dup)
    duplicates = n - int(keep.sum())
    wm = _running_max_within(ts, src, exclusive=False) - grace_ns
    late = np.zeros(n, dtype=bool)
    closed_at = []
    for interval in intervals_ns:
        end = (ts - offset_ns) // interval * interval + offset_ns + interval
        closed = end <= wm
        closed_at.append(closed)
        late |= closed & (wm - end >= horizon_ns)
    late_rejected = int((keep & late).sum())
    keep &= ~late
    rows = np.flatnonzero(keep)
    revisions: dict[tuple[str, str, int, int], int] = {}
    for interval, closed in zip(intervals_ns, closed_at, strict=True):
        late_rows = rows[closed[rows]]
        if not len(late_rows):
            continue
        start = (ts - offset_ns) // interval * interval + offset_ns
        timely = rows[~closed[rows]]
        on_time = set(zip(series[timely].tolist(), start[timely].tolist(), strict=True))
        counts: dict[tuple[int, int], int] = {}
        for key in zip(series[late_rows].tolist(), start[late_rows].tolist(), strict=True):
            counts[key] = counts.get(key, 0) + 1
        for (ser, s), count in counts.items():
            # a window first emitted by its first late trade starts at revision 0
            rev = count if (ser, s) in on_time else count - 1
            if rev > 0:
                revisions[(*prep.name(ser), interval // NS, s)] = rev
    return Admission(keep, duplicates, late_rejected, revisions)


def candles_with_admission(
    table: pa.Table,
    intervals_ns: tuple[int, ...],
    *,
    grace_ns: int,
    horizon_ns: int,
    window: int,
    offset_ns: int = 0,
    max_id_jump: int = 0,
    max_keys: int = 0,
) -> tuple[list[Candle], Admission] | None:
    """The final candles (latest revision of every window) the streaming path would leave
    behind for ``table`` in arrival order, or ``None`` if only streaming is exact."""
    prep = Prepared(table)
    adm = admit(
        prep, intervals_ns, grace_ns=grace_ns, horizon_ns=horizon_ns, window=window, offset_ns=offset_ns,
        max_id_jump=max_id_jump, max_keys=max_keys,
    )  # fmt: skip
    if adm is None:
        return None
    candles = _candles(prep, None if adm.accepted.all() else adm.accepted, intervals_ns, offset_ns, None)
    if adm.revisions:
        candles = [
            msgspec.structs.replace(c, revision=rev)
            if (rev := adm.revisions.get((c.venue, c.symbol, c.interval, c.start), 0))
            else c
            for c in candles
        ]
    return candles, adm
