"""Hostile input never crashes or blackholes the job (issue 13, the input half).

Two parts:

* **Named regression cases**: issue 13's corpus, one test per item (each failed before
  the fix): poison values (item 2), new events inside deleted batches (item 5, in
  tests/unit/test_archive.py), outlier ids (6), stale ids (7), outlier event times (8),
  hostile venues and the key bound (11, terminal escaping in tests/flows/test_cli.py).
* **The fuzz harness**: Hypothesis over every wire decoder, every history decoder, the
  batch decoder (validation + watermark), the keyed step and the candle engine, asserting
  that no exception escapes a step, that ``read = accepted + rejected + duplicate``, and
  that good trades around the hostile ones are unaffected. ``make test`` runs the short
  ``ci`` profile; ``HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest tests/unit/test_hostile_input.py``
  runs 20,000 examples per property.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.support.data import TRADES
from tests.support.hostile import (
    FORMAT_SAMPLES,
    GENERIC_PLAIN,
    POISON_FLOATS,
    POISON_TEXT,
    deep,
    history_decoders,
    hostile_text,
    mutated,
    number_tokens,
)
from ticktape.flows.backfill.run import fast_path_blocker
from ticktape.flows.config import Config
from ticktape.flows.steps.candles import CandleConfig, CandleEngine
from ticktape.flows.steps.candles_vector import candles_from_table, candles_with_admission
from ticktape.flows.steps.dedupe import JUMP, JUMP_CONFIRM, NEW, TradeWindow
from ticktape.flows.steps.shard import ShardOut, ShardProcessor, ShardSettings
from ticktape.schemas.decoding import FORMATS, BatchDecoder, decoder_for
from ticktape.schemas.errors import DataError
from ticktape.schemas.history import HistorySpec, open_history
from ticktape.schemas.limits import MAX_DEAD_LETTER_RAW, MAX_NOTIONAL, MAX_PRICE, MAX_SIZE, MIN_PRICE, TS_MAX
from ticktape.schemas.records import Candle, DLCode, EventType, Tally, Tick, TickBatch
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import Decoder
from ticktape.sinks.kafka.sink import dead_letter_value, event_value

S = 1_000_000_000
T0 = 1_700_000_000 * S  # the trades' times (2023)
NOW = T0 + 5 * 365 * 86_400 * S  # the receive clock of the file replays here (2028)
SRC = "file:hostile"
KAFKA_MAX = 1_000_000  # the producer's default message.max.bytes


# -- helpers -----------------------------------------------------------------------------


def generic(**fields: Any) -> bytes:
    return json.dumps(GENERIC_PLAIN | fields).encode()


def decoder(
    rules: ValidationRules | None = None, fmt: str = "generic", *, clock: bool = False
) -> BatchDecoder:
    return BatchDecoder(SRC, decoder_for(fmt), TickValidator(rules or ValidationRules(), check_clock=clock))


def shard_settings(**over: Any) -> ShardSettings:
    base: dict[str, Any] = {
        "rules": ValidationRules(max_jump_pct=0.0, zscore_threshold=0.0),
        "window": 4096,
        "reorder": 256,
        "contiguous_venues": frozenset({"binance", "x"}),
        "stale_after": 3600 * S,
        "stale_overrides": {},
        "live": False,
        "candles": CandleConfig(),
        "max_id_jump": 1_000_000,
        "max_keys": 10_000,
    }
    return ShardSettings(**(base | over))


class Run(msgspec.Struct):
    batch: TickBatch
    outs: list[ShardOut]

    @property
    def accepted(self) -> list[tuple[str, str, str]]:
        return [(u.venue, u.symbol, u.trade_id) for o in self.outs for u in o.updates]

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.batch.dead] + [d.code for o in self.outs for d in o.dead]

    @property
    def tally(self) -> Tally:
        total = Tally()
        for o in self.outs:
            for t in o.counts.values():
                total.accepted += t.accepted
                total.rejected += t.rejected
                total.duplicate += t.duplicate
        total.rejected += len(self.batch.dead)
        return total

    @property
    def candles(self) -> list[Candle]:
        return [c for o in self.outs for c in o.candles]

    def balanced(self) -> bool:
        t = self.tally
        return self.batch.n_read == t.accepted + t.rejected + t.duplicate


def pipeline(
    messages: list[bytes], *, rules: ValidationRules | None = None, fmt: str = "generic", **over: Any
) -> Run:
    """decode + validate (one source partition) -> keyed step with candles -> end of input."""
    batch = decoder(rules, fmt).decode((i, m, NOW, 0) for i, m in enumerate(messages))
    proc = ShardProcessor(shard_settings(**over))
    return Run(batch, [proc.process(batch.ticks), proc.flush()])


def good(n: int, *, start: int = 1, venue: str = "x", symbol: str = "BTC-USDT") -> list[bytes]:
    """Trades ``start .. start + n - 1`` of one symbol, one second apart."""
    return [
        generic(venue=venue, symbol=symbol, trade_id=k + 1, ts_event=T0 + k * S, price=100.0 + (k % 7) / 8)
        for k in range(start - 1, start - 1 + n)
    ]


# -- item 2: poison values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"price": 1e308}, DLCode.BAD_PRICE),
        ({"size": 1e300}, DLCode.BAD_SIZE),
        ({"price": 1e15, "size": 1e15}, DLCode.BAD_NOTIONAL),
        ({"price": 1e-320}, DLCode.BAD_PRICE),
        ({"venue": ""}, DLCode.BAD_VENUE),
        ({"ts_event": 10**23}, DLCode.TS_RANGE),
        ({"ts_event": -5}, DLCode.TS_RANGE),
        ({"trade_id": "x" * 200}, DLCode.BAD_TRADE_ID),
    ],
    ids=[
        "price-1e308",
        "size-1e300",
        "notional",
        "subnormal-price",
        "empty-venue",
        "ts-1e23",
        "ts-negative",
        "long-id",
    ],
)
def test_poison_values_are_dead_letters_and_later_trades_are_unaffected(
    fields: dict[str, Any], code: str
) -> None:
    """Each crashed the job (OverflowError in the exact sums, ValueError in the cache key
    encoder, an abort on int64 overflow) at the same offset on every resume."""
    clean = pipeline(good(20))
    run = pipeline([*good(10), generic(**({"trade_id": 999} | fields)), *good(10, start=11)])
    assert run.codes == [code]
    assert run.accepted == clean.accepted
    assert run.balanced()
    assert [c.notional for c in run.candles] == [c.notional for c in clean.candles]


def test_the_candle_engine_sums_stay_exact_and_finite_at_the_limits() -> None:
    """The largest values the validator accepts: exact integer sums, finite floats."""
    price, size = MAX_PRICE, MAX_NOTIONAL / MAX_PRICE
    msgs = [generic(trade_id=i, ts_event=T0 + i, price=price, size=size) for i in range(1, 1001)]
    run = pipeline(msgs)
    assert run.codes == []
    one_minute = [c for c in run.candles if c.interval == 60]
    assert sum(c.trades for c in one_minute) == 1000
    assert all(math.isfinite(c.notional) and math.isfinite(c.vwap) for c in run.candles)
    assert sum(c.notional for c in one_minute) == pytest.approx(1000 * price * size)


def _ticks_table(ticks: list[Tick]) -> pa.Table:
    cols = ("venue", "symbol", "price", "size", "side", "trade_id", "trade_no", "ts_event")
    return pa.table({c: [getattr(t, c) for t in ticks] for c in cols})


def _streaming_candles(ticks: list[Tick]) -> list[Candle]:
    engine = CandleEngine(msgspec.convert({"intervals": ["1m"]}, CandleConfig, dec_hook=_dec), live=False)
    out: list[Candle] = []
    wmark = 0
    for t in ticks:
        wmark = max(wmark, t.ts_event)
        engine.observe_watermark(t.src, wmark, out)
        assert engine.add(t, out)
    engine.flush(out)
    return sorted((msgspec.structs.replace(c, ts_final=0) for c in out), key=lambda c: c.start)


def _dec(typ: type, obj: Any) -> Any:
    from ticktape.schemas.durations import dec_hook

    return dec_hook(typ, obj)


prices = st.one_of(st.floats(MIN_PRICE, MAX_PRICE), st.sampled_from([MIN_PRICE, MAX_PRICE, 1.0, 0.1]))
sizes = st.one_of(
    st.floats(0.0, MAX_SIZE, allow_subnormal=True), st.sampled_from([0.0, 5e-324, 1e-320, MAX_SIZE, 1e-9])
)


@given(st.lists(st.tuples(prices, sizes, st.integers(0, 600 * S)), min_size=1, max_size=60))
def test_fast_and_streaming_candle_paths_agree_bit_for_bit_on_every_accepted_value(rows: list[Any]) -> None:
    """Issue 13 item 2: price 1e308 made the streaming engine raise and the fast backfill
    path write notional 0.0. Both accept exactly the values inside the limits, and on
    those their volume/notional/vwap are the same bits (the fast path's int64 limbs used
    to overflow beyond notional 2**63 summed)."""
    rows = [r for r in rows if r[0] * r[1] <= MAX_NOTIONAL]
    assume(rows)
    ticks = [
        Tick("v", "A-B", p, s, "buy", str(i), T0 + dt, 0, "p", i, trade_no=i)
        for i, (p, s, dt) in enumerate(sorted(rows, key=lambda r: r[2]))
    ]
    vector = sorted(
        (msgspec.structs.replace(c, ts_final=0) for c in candles_from_table(_ticks_table(ticks), (60 * S,))),
        key=lambda c: c.start,
    )
    assert vector == _streaming_candles(ticks)


def test_values_beyond_the_limits_send_a_backfill_to_the_streaming_path() -> None:
    base = {"venue": ["x"] * 2, "symbol": ["A-B"] * 2, "side": ["buy"] * 2, "trade_id": ["1", "2"],
            "trade_no": [1, 2], "src": ["f"] * 2, "offset": [0, 1]}  # fmt: skip
    ok = pa.table(base | {"price": [1.0, 2.0], "size": [1.0, 1.0], "ts_event": [T0, T0 + S]})
    assert fast_path_blocker({"f": ok}, Config()) == ""
    for bad in (
        {"price": [1e308, 2.0]},
        {"size": [1e300, 1.0]},
        {"price": [1e15, 1.0], "size": [1e15, 1.0]},
        {"ts_event": [T0, TS_MAX]},
        {"ts_event": [T0, T0 + 30 * 86_400 * S]},
        {"venue": ["", "x"]},
        {"venue": ["[red]x[/red]", "x"]},
    ):
        table = ok
        for name, values in bad.items():
            table = table.set_column(
                table.schema.get_field_index(name), name, pa.array(values, table.schema.field(name).type)
            )
        assert fast_path_blocker({"f": table}, Config()), bad


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_nesting_is_a_decode_error_in_every_format(fmt: str, depth: int) -> None:
    """1,000-level nested JSON raised RecursionError in the venue error helper."""
    decode = FORMATS[fmt]
    for raw in (
        deep(depth),
        b'{"e":"trade","data":' + deep(depth) + b"}",
        generic(x=None)[:-1] + b',"y":' + deep(depth) + b"}",
    ):
        with pytest.raises(DataError) as info:
            decode(raw, SRC, 0, T0, 0)
        assert info.value.code in (DLCode.DECODE_ERROR, DLCode.UNSUPPORTED, DLCode.MISSING_FIELD)


def test_a_huge_message_makes_a_bounded_dead_letter() -> None:
    """A ~900 KB message: its dead letter went over the Kafka producer's 1 MB limit and
    failed the snapshot. The dead letter keeps the first bytes, the size and the SHA-256."""
    raw = generic(symbol="BTC-USDT", side="x" * 900_000)
    batch = decoder().decode([(0, raw, T0, 0)])
    (dl,) = batch.dead
    assert dl.code == DLCode.BAD_SIDE
    assert dl.raw == raw[:MAX_DEAD_LETTER_RAW]
    assert dl.raw_size == len(raw)
    import hashlib

    assert dl.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert len(dead_letter_value(dl)) < KAFKA_MAX // 10
    assert len(event_value(batch.events[0])) < KAFKA_MAX // 10
    doc = json.loads(dead_letter_value(dl))
    assert (doc["raw_size"], doc["raw_truncated"]) == (len(raw), True)


# -- item 6: outlier ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "outlier", [10**30, 9_999_999_999, "9" * 25], ids=["1e30", "9999999999", "25-digits"]
)
def test_one_outlier_id_is_rejected_and_does_not_poison_the_window(outlier: object) -> None:
    """One trade with id 10**30 (or 9999999999 among small ids) made every later valid
    trade of the symbol a duplicate, and missing_trades ~10**30."""
    clean = pipeline(good(40))
    run = pipeline([*good(20), generic(trade_id=outlier, ts_event=T0 + 20 * S), *good(20, start=21)])
    assert run.accepted == clean.accepted
    assert run.codes == [DLCode.ID_JUMP]
    assert run.tally == Tally(40, 1, 0)
    assert sum(o.missing for o in run.outs) == 0
    dl = run.outs[0].dead[0]
    assert "high-water mark 20" in dl.message
    assert any(e.type == EventType.DEAD_LETTER and e.event_id == dl.dl_id for e in run.outs[0].events)


def test_a_real_jump_of_the_id_sequence_is_confirmed_by_the_ids_after_it() -> None:
    w = TradeWindow()
    assert w.check(1, 64, 4, [], 1000) == NEW
    jumped = [10**6 + i for i in range(5)]
    verdicts = [w.check(n, 64, 4, [], 1000) for n in jumped]
    assert verdicts == [JUMP] * (JUMP_CONFIRM - 1) + [NEW] * (5 - JUMP_CONFIRM + 1)
    assert w.hwm == jumped[-1]
    # an outlier between normal ids never confirms
    w2 = TradeWindow()
    for n in [1, 2, 10**9, 3, 10**9 + 1, 4, 10**9 + 2, 5]:
        w2.check(n, 64, 4, None, 1000)
    assert w2.hwm == 5


def test_sparse_ids_of_a_shared_counter_are_not_jumps_on_non_contiguous_venues() -> None:
    """Venues whose ids are not per-symbol contiguous may skip millions between trades of
    a quiet symbol: there an id must also more than double the high-water mark."""
    w = TradeWindow()
    ids = [1_500_000_000 + k * 5_000_000 for k in range(10)]
    assert [w.check(n, 64, 4, None, 1_000_000) for n in ids] == [NEW] * 10
    assert w.check(10**30, 64, 4, None, 1_000_000) == JUMP


# -- item 7: stale ids ------------------------------------------------------------------------


def test_a_shuffled_file_gives_stale_id_rejections_not_duplicates() -> None:
    """A fully shuffled file: 8,376 distinct trades were counted as duplicates."""
    rows, decode = open_history(TRADES / "XRP_ETH-trades.json.gz", HistorySpec(format="freqtrade"))
    raws = [raw for _, raw in rows]
    random.Random(1).shuffle(raws)
    batch = BatchDecoder(SRC, decode, TickValidator(ValidationRules(), check_clock=False)).decode(
        (i, r, 0, 0) for i, r in enumerate(raws)
    )
    proc = ShardProcessor(shard_settings(rules=ValidationRules(), contiguous_venues=frozenset({"binance"})))
    run = Run(batch, [proc.process(batch.ticks), proc.flush()])
    assert run.tally.duplicate == 0, "only a known repeat is a duplicate"
    codes = run.codes
    assert codes.count(DLCode.STALE_ID) == 8376
    assert run.balanced()
    # and a true repeat stays a duplicate
    again = proc.process(batch.ticks[:50])
    assert (
        sum(t.duplicate for t in again.counts.values()) + sum(t.rejected for t in again.counts.values()) == 50
    )


# -- item 8: outlier event times ---------------------------------------------------------------


def test_a_future_dated_row_does_not_poison_the_watermark() -> None:
    """One row a year ahead moved the partition's watermark: 899 of 1,000 later rows
    became LATE_TICK. It is a TS_JUMP dead letter now; year 2100 and later is TS_RANGE
    (a trade after ~2116 was accepted but never closed into a candle)."""
    year = 365 * 86_400 * S
    clean = pipeline(good(100))
    for ts, code in (
        (T0 + year, DLCode.TS_JUMP),
        (4_102_444_800 * S, DLCode.TS_RANGE),
        (2**62 + 1, DLCode.TS_RANGE),
    ):
        run = pipeline([*good(50), generic(trade_id=10_000, ts_event=ts), *good(50, start=51)])
        assert run.codes == [code]
        assert run.accepted == clean.accepted
        assert [c.start for c in run.candles] == [c.start for c in clean.candles]


def test_consecutive_far_ahead_rows_are_a_real_move_of_event_time() -> None:
    """A long halt in a file: the first rows after it are TS_JUMP, the third in a row that
    agrees moves the watermark (nothing poisons, nothing blocks the rest of the file)."""
    later = T0 + 30 * 86_400 * S
    msgs = [*good(5), *(generic(trade_id=100 + i, ts_event=later + i * S) for i in range(10))]
    run = pipeline(msgs)
    assert run.codes == [DLCode.TS_JUMP] * 2
    assert len(run.accepted) == 5 + 8


def test_the_watermark_guard_state_survives_a_restart_mid_run() -> None:
    later = T0 + 30 * 86_400 * S
    msgs = [*good(5), *(generic(trade_id=100 + i, ts_event=later + i * S) for i in range(6))]
    whole = decoder().decode((i, m, NOW, 0) for i, m in enumerate(msgs))
    first = decoder()
    part1 = first.decode((i, m, NOW, 0) for i, m in enumerate(msgs[:6]))
    assert len(first.state()) == 4  # a jump being counted is part of the state
    second = BatchDecoder.resume(
        SRC, decoder_for("generic"), TickValidator(ValidationRules(), check_clock=False), first.state()
    )
    part2 = second.decode((i + 6, m, NOW, 0) for i, m in enumerate(msgs[6:]))
    assert [t.trade_id for t in part1.ticks + part2.ticks] == [t.trade_id for t in whole.ticks]
    assert [d.code for d in part1.dead + part2.dead] == [d.code for d in whole.dead]


def test_a_first_row_in_the_future_of_the_clock_cannot_anchor_the_watermark() -> None:
    run = pipeline([generic(trade_id=1000, ts_event=NOW + 30 * 86_400 * S), *good(20)])
    assert run.codes == [DLCode.TS_JUMP]
    assert run.accepted == pipeline(good(20)).accepted


def test_live_sources_bound_event_time_by_the_clock_not_the_watermark() -> None:
    d = decoder(clock=True)
    batch = d.decode(
        [
            (0, generic(ts_event=T0), T0, 0),
            (1, generic(trade_id=6, ts_event=T0 + 86_400 * S), T0 + 86_400 * S, 0),
        ]
    )
    assert [t.trade_id for t in batch.ticks] == ["5", "6"]


# -- item 11: venues and the key bound -----------------------------------------------------------


@pytest.mark.parametrize(
    "venue",
    ["", "x" * 10_000, "a\x00b", "../x", "[red]x[/red]", "bin\x1b[31mance", "nyse\n", "Ⅻ"],
    ids=["empty", "10k", "nul", "path", "markup", "escape", "newline", "unicode"],
)
def test_venues_are_validated_like_symbols(venue: str) -> None:
    batch = decoder().decode([(0, generic(venue=venue), T0, 0)])
    assert [d.code for d in batch.dead] == [DLCode.BAD_VENUE]
    assert not batch.ticks


def test_a_venue_allow_list() -> None:
    rules = ValidationRules(venue_allow_list=("x",))
    batch = decoder(rules).decode([(0, generic(), T0, 0), (1, generic(venue="y"), T0, 0)])
    assert [d.code for d in batch.dead] == [DLCode.VENUE_NOT_ALLOWED]
    assert len(batch.ticks) == 1


def test_the_keys_of_a_shard_are_bounded_with_a_visible_rejection() -> None:
    """30,000 distinct venues took memory 168 -> 696 MB and throughput 62.8k -> 3.8k/s:
    a shard tracks at most max_keys keys; further ones are KEY_LIMIT dead letters."""
    msgs = [generic(venue=f"v{i}", trade_id=1) for i in range(300)] + good(5)
    run = pipeline(msgs, max_keys=100)
    assert run.codes.count(DLCode.KEY_LIMIT) == 205  # 200 venues + 5 trades of BTC-USDT@x beyond 100 keys
    assert run.tally == Tally(100, 205, 0)
    assert run.balanced()
    limit_events = [e for o in run.outs for e in o.events if e.type == EventType.DEAD_LETTER]
    assert [e.seq for e in limit_events][:3] == [1, 2, 3]
    assert {e.aggregate for e in limit_events} == {"shard:000"}


# -- the fuzz harness ---------------------------------------------------------------------------

fuzz = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
)


def judged(call: Callable[[], list[Tick]]) -> tuple[list[Tick] | None, str | None]:
    """``(result, None)``, or ``(None, code)`` of the DataError it raised; any other
    exception escapes (and fails the test)."""
    try:
        return call(), None
    except DataError as exc:
        return None, exc.code


@st.composite
def wire_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(FORMAT_SAMPLES)))
    doc = draw(st.sampled_from(FORMAT_SAMPLES[fmt]))
    return fmt, draw(
        st.one_of(
            mutated(doc), st.binary(max_size=64), st.sampled_from([deep(3000), b"", b"\xff\xfe", b"null"])
        )
    )


@fuzz
@given(wire_messages())
def test_fuzz_wire_decoders_raise_only_data_errors(case: tuple[str, bytes]) -> None:
    fmt, raw = case
    ticks, code = judged(lambda: FORMATS[fmt](raw, SRC, 0, T0, 0))
    assert code in (None, *DLCode.ALL)
    validator = TickValidator(ValidationRules(), check_clock=True)
    for t in ticks or []:  # what decoded, the validator judges without raising anything else
        assert judged(lambda t=t: [validator.check(t)])[1] in (None, *DLCode.ALL)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Decoder, list[Any]]]:
    return history_decoders(tmp_path_factory.mktemp("history"))


cells = st.one_of(hostile_text, number_tokens, st.sampled_from(["1700000000000", "1.5", "buy", "7", ""]))


@fuzz
@given(st.data())
def test_fuzz_history_decoders_raise_only_data_errors(
    history: dict[str, tuple[Decoder, list[Any]]], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(history)))
    decode, samples = history[name]
    if name == "csv":
        row = data.draw(st.lists(cells, max_size=7))
        raw = ",".join(row).encode("utf-8", "surrogatepass")
    else:
        raw = data.draw(st.one_of(mutated(samples[0]), st.binary(max_size=32)))
    ticks, code = judged(lambda: decode(raw, SRC, 0, 0, 0))
    assert code in (None, *DLCode.ALL)
    validator = TickValidator(ValidationRules(), check_clock=False)
    for t in ticks or []:
        assert judged(lambda t=t: [validator.check(t)])[1] in (None, *DLCode.ALL)


# Field by field, values that must never be accepted (and never crash anything).
bad_number = st.one_of(
    st.sampled_from([v for v in POISON_FLOATS if not (MIN_PRICE <= v <= MAX_PRICE)]),
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda v: not (-1e15 <= v <= 1e15) or v < 0 or math.isnan(v)
    ),
    st.sampled_from(["abc", "", None, [], {}, "1e400", True]),
)
POISON_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "price": bad_number,
    "size": st.one_of(
        st.sampled_from([1e300, -1.0, float("inf"), float("nan"), "x", None]), st.floats(max_value=-1e-300)
    ),
    "ts_event": st.one_of(
        st.sampled_from(
            [
                10**23,
                -1,
                2**63,
                2**64,
                TS_MAX,
                T0 + 10 * 365 * 86_400 * S,
                T0 + 365 * 86_400 * S,
                T0 + 8 * 86_400 * S,
                "soon",
                1.5e18,
                None,
            ]
        )
    ),
    "trade_id": st.sampled_from([10**30, 9_999_999_999, "9" * 25, 2**63, 2**64]),
    "venue": st.sampled_from([*POISON_TEXT, None, 5]),
    "symbol": st.sampled_from([v for v in POISON_TEXT if v != "BTC-USDT"] + [None, 5, "btc usdt"]),
    "side": st.sampled_from(["x" * 900_000, "BUYY", None, 3, "[red]b[/red]"]),
}


@st.composite
def poisoned(draw: st.DrawFn, n: int) -> bytes:
    """A generic message for the good stream's symbol with 1-3 poisoned fields, or a broken
    message as a whole (deep, huge, truncated, not JSON)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(
            st.sampled_from(
                [
                    deep(5000),
                    b"{" * 2000,
                    generic()[:20],
                    b"\x00" * 10,
                    b'{"venue":' + b"[" * 900 + b"]" * 900 + b"}",
                ]
            )
        )
    fields = draw(st.lists(st.sampled_from(sorted(POISON_FIELDS)), min_size=1, max_size=3, unique=True))
    doc = dict(GENERIC_PLAIN, trade_id=f"h{n}", ts_event=T0)
    for name in fields:
        doc[name] = draw(POISON_FIELDS[name])
    return json.dumps(doc).encode("utf-8", "surrogatepass")


@fuzz
@given(st.data(), st.integers(5, 40))
def test_fuzz_pipeline_no_exception_accounting_balances_good_trades_unaffected(
    data: st.DataObject, n_good: int
) -> None:
    """decode -> validate -> watermark -> keyed step -> candles -> end of input, with
    poison after good trades (at most two in a row: three agreeing outliers in a row are
    by definition a real jump)."""
    goods = good(n_good)
    messages: list[bytes] = []
    for i, g in enumerate(goods):  # (the first row of a partition anchors its watermark)
        messages.append(g)
        for k in range(data.draw(st.integers(0, 2))):
            messages.append(data.draw(poisoned(i * 3 + k)))
    clean = pipeline(goods)
    run = pipeline(messages)
    assert run.balanced()
    assert run.batch.n_read == len(messages)
    expected = set(clean.accepted)
    assert [a for a in run.accepted if a in expected] == clean.accepted
    assert set(run.codes) <= set(DLCode.ALL)
    for c in run.candles:
        assert all(math.isfinite(v) for v in (c.open, c.high, c.low, c.close, c.volume, c.notional, c.vwap))


@fuzz
@given(
    st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(-10, 10)), max_size=60), st.integers(1, 10**7)
)
def test_fuzz_trade_window_never_raises_and_outliers_never_move_it(
    ids: list[tuple[int, int]], max_jump: int
) -> None:
    w = TradeWindow()
    gaps: list[tuple[int, int]] = []
    for n, _ in ids:
        before = w.hwm
        verdict = w.check(n, 64, 8, gaps, max_jump)
        if verdict == JUMP:
            assert w.hwm == before
    w.flush(gaps)
    assert all(a <= b for a, b in gaps)


def test_vector_and_streaming_agree_after_poison_is_filtered() -> None:
    """The same file through the fast path and through streaming: equal candles."""
    rng = np.random.default_rng(3)
    n = 2000
    table = pa.table({
        "venue": ["x"] * n, "symbol": [f"S{i % 3}-USD" for i in range(n)],
        "price": rng.uniform(MIN_PRICE, 10.0, n), "size": rng.uniform(0, 1e6, n),
        "side": ["buy", "sell"] * (n // 2), "trade_id": [str(i) for i in range(n)], "trade_no": list(range(n)),
        "ts_event": [T0 + i * S // 10 for i in range(n)], "src": ["f"] * n, "offset": list(range(n)),
    })  # fmt: skip
    result = candles_with_admission(
        table, (60 * S,), grace_ns=2 * S, horizon_ns=300 * S, window=4096, max_id_jump=1000
    )
    assert result is not None
    jumped = table.set_column(
        table.schema.get_field_index("trade_no"), "trade_no", pa.array([*range(n - 1), 10**12])
    )
    assert (
        candles_with_admission(
            jumped, (60 * S,), grace_ns=2 * S, horizon_ns=300 * S, window=4096, max_id_jump=1000
        )
        is None
    )


def test_fuzz_profile_is_documented() -> None:
    """The longer run is one environment variable away (README "Layout and tests")."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "HYPOTHESIS_PROFILE=fuzz" in readme
