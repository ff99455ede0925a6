"""ticktape.schemas.validation: the stateless tick rules and the per-symbol price guard."""

from __future__ import annotations

import functools
import math
import pickle

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import records
from ticktape.schemas.durations import Duration
from ticktape.schemas.errors import DataError, RejectError
from ticktape.schemas.records import DLCode, Tick
from ticktape.schemas.validation import DEFAULT_SYMBOL_PATTERN, PriceGuard, TickValidator, ValidationRules

S = 1_000_000_000
T_RECV = 1_700_000_000 * S


#: A valid tick received at T_RECV, a second after its event time (no trade number).
tick = functools.partial(records.tick, ts_event=T_RECV - S, ts_recv=T_RECV, trade_no=-1)


def validator(check_clock: bool = True, **rules: object) -> TickValidator:
    return TickValidator(ValidationRules(**rules), check_clock=check_clock)  # type: ignore[arg-type]


def rejection(v: TickValidator, t: Tick) -> RejectError:
    with pytest.raises(RejectError) as info:
        v.check(t)
    return info.value


def assert_message(err: DataError, field: str, *parts: str) -> None:
    """The message names the field, the expectation and the value."""
    text = str(err)
    assert text == err.describe()
    assert f"field `{field}`" in text
    assert err.field == field
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


def test_a_good_tick_passes_unchanged() -> None:
    v = validator()
    t = tick()
    assert v.check(t) is t
    assert t == tick()


def test_defaults() -> None:
    rules = ValidationRules()
    assert rules.symbol_pattern == DEFAULT_SYMBOL_PATTERN
    assert (rules.max_future, rules.max_past) == (5 * S, 600 * S)
    assert isinstance(rules.max_future, Duration)
    assert (rules.max_jump_pct, rules.zscore_threshold, rules.zscore_min_samples) == (20.0, 8.0, 50)
    assert rules.allow_list == ()
    assert rules.check_instrument_ids is True


def test_rules_reject_unknown_keys() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_jump"):
        msgspec.convert({"max_jump": 5}, ValidationRules)


# -- price / size / side -----------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "shown"),
    [(0.0, "0.0"), (-1.5, "-1.5"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")],
)
def test_bad_price(price: float, shown: str) -> None:
    err = rejection(validator(), tick(price=price))
    assert err.code == DLCode.BAD_PRICE
    assert_message(err, "price", "a number from 1e-12 to 1e+15", f"got {shown}")


@pytest.mark.parametrize("price", [1e-12, 0.001, 68_900.5, 1e15])
def test_good_prices(price: float) -> None:
    assert validator().check(tick(price=price)).price == price


@pytest.mark.parametrize(
    ("size", "shown"), [(-0.01, "-0.01"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_bad_size(size: float, shown: str) -> None:
    err = rejection(validator(), tick(size=size))
    assert err.code == DLCode.BAD_SIZE
    assert_message(err, "size", "a number from 0 to 1e+15", f"got {shown}")


def test_zero_size_is_allowed() -> None:
    assert validator().check(tick(size=0.0)).size == 0.0


@pytest.mark.parametrize("side", ["BUY", "bid", "", "Sell "])
def test_bad_side(side: str) -> None:
    err = rejection(validator(), tick(side=side))
    assert err.code == DLCode.BAD_SIDE
    assert_message(err, "side", "buy, sell or unknown", f"got {side}")


@pytest.mark.parametrize("side", ["buy", "sell", "unknown"])
def test_good_sides(side: str) -> None:
    assert validator().check(tick(side=side)).side == side


def test_first_broken_rule_is_reported() -> None:
    err = rejection(validator(), tick(price=-1.0, size=-1.0, side="x", symbol="??"))
    assert err.code == DLCode.BAD_PRICE
    err = rejection(validator(), tick(size=-1.0, side="x", symbol="??"))
    assert err.code == DLCode.BAD_SIZE


# -- symbols -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "symbol", ["BTC-USDT", "BTC", "XRP-ETH", "1INCH-USD", "BRK.B", "ES_F-USD", "A" * 24 + "-" + "B" * 24]
)
def test_good_symbols(symbol: str) -> None:
    assert validator().check(tick(symbol=symbol)).symbol == symbol


@pytest.mark.parametrize(
    "symbol",
    ["btc-usdt", "", "BTC--USDT", "-BTC", "BTC-", "BTC/USDT", "BTC USDT", "A" * 25, "BTC-USDT-X", "€UR"],
)
def test_bad_symbols(symbol: str) -> None:
    err = rejection(validator(), tick(symbol=symbol))
    assert err.code == DLCode.BAD_SYMBOL
    assert_message(err, "symbol", "a symbol matching " + DEFAULT_SYMBOL_PATTERN, f"got {symbol}")


def test_custom_symbol_pattern() -> None:
    v = validator(symbol_pattern=r"^[A-Z]{3}/[A-Z]{3}$")
    assert v.check(tick(symbol="EUR/USD")).symbol == "EUR/USD"
    err = rejection(v, tick(symbol="BTC-USDT"))
    assert err.code == DLCode.BAD_SYMBOL
    assert_message(err, "symbol", r"^[A-Z]{3}/[A-Z]{3}$", "BTC-USDT")


def test_allow_list_replaces_the_pattern() -> None:
    v = validator(allow_list=("BTC-USDT", "weird symbol"))
    assert v.check(tick(symbol="BTC-USDT")).symbol == "BTC-USDT"
    assert v.check(tick(symbol="weird symbol")).symbol == "weird symbol"
    err = rejection(v, tick(symbol="ETH-USDT"))
    assert err.code == DLCode.SYMBOL_NOT_ALLOWED
    assert_message(err, "symbol", "a symbol on the allow-list", "got ETH-USDT")


def test_symbol_verdicts_are_remembered_only_for_good_symbols() -> None:
    v = validator()
    for _ in range(3):
        assert v.check(tick(symbol="BTC-USDT")).symbol == "BTC-USDT"
        assert rejection(v, tick(symbol="bad")).code == DLCode.BAD_SYMBOL


# -- clock -------------------------------------------------------------------------


def test_future_relative_to_ts_recv_without_broker_time() -> None:
    v = validator()
    assert v.check(tick(ts_event=T_RECV + 5 * S)).ts_event == T_RECV + 5 * S  # the limit itself is fine
    err = rejection(v, tick(ts_event=T_RECV + 5 * S + 1))
    assert err.code == DLCode.TS_FUTURE
    assert_message(
        err, "ts_event", "at most 5s ahead of the receive clock", "5.000s ahead", str(T_RECV + 5 * S + 1)
    )


def test_past_relative_to_ts_recv_without_broker_time() -> None:
    v = validator()
    assert v.check(tick(ts_event=T_RECV - 600 * S)).price == 100.0
    err = rejection(v, tick(ts_event=T_RECV - 3600 * S))
    assert err.code == DLCode.TS_PAST
    assert_message(
        err, "ts_event", "at most 600s behind the receive clock", "3600.000s behind", str(T_RECV - 3600 * S)
    )


def test_broker_time_is_the_reference_when_known() -> None:
    v = validator()
    kafka = T_RECV - 3000 * S  # a replay: the broker stamped it long before we read it
    t = tick(ts_event=kafka - S, ts_kafka=kafka)
    assert v.check(t) is t  # 1 s before the broker time: fine although an hour before ts_recv
    err = rejection(v, tick(ts_event=T_RECV, ts_kafka=kafka))
    assert err.code == DLCode.TS_FUTURE
    assert "3000.000s ahead" in str(err)
    err = rejection(v, tick(ts_event=kafka - 601 * S, ts_kafka=kafka))
    assert err.code == DLCode.TS_PAST
    assert "601.000s behind" in str(err)


def test_clock_limits_configurable_and_disabled_by_zero() -> None:
    v = validator(max_future=Duration.parse("250ms"), max_past=Duration.parse("1h"))
    err = rejection(v, tick(ts_event=T_RECV + S))
    assert err.code == DLCode.TS_FUTURE
    assert "at most 0.25s ahead" in str(err)
    assert v.check(tick(ts_event=T_RECV - 3599 * S)).price == 100.0
    off = validator(max_future=Duration(0), max_past=Duration(0))
    for ts in (0, T_RECV + 10**15, T_RECV - 10**15):
        assert off.check(tick(ts_event=ts)).ts_event == ts


def test_clock_rule_skipped_without_a_trustworthy_reference() -> None:
    v = validator(check_clock=False)
    for ts in (1, T_RECV + 10**15):
        assert v.check(tick(ts_event=ts)).ts_event == ts


# -- instrument ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "standard"),
    [
        ("037833100", "037833100"),
        (" 037833100 ", "037833100"),
        ("03783310", "037833100"),  # 8 characters: the check digit is added
        ("38259p50", "38259P508"),
        ("US0378331005", "US0378331005"),
        ("us0378331005", "US0378331005"),
        ("AU0000XVGZA3", "AU0000XVGZA3"),
    ],
)
def test_instrument_ids_are_standardized(raw: str, standard: str) -> None:
    t = validator().check(tick(instrument_id=raw, symbol="AAPL"))
    assert t.instrument_id == standard


@pytest.mark.parametrize(
    ("raw", "field", "parts"),
    [
        (
            "037833101",
            "cusip",
            ("a valid 8- or 9-character CUSIP", "037833101", "check digit mismatch: expected 0, got 1"),
        ),
        ("037833", "cusip", ("a valid 8- or 9-character CUSIP", "037833", "issuer-only")),
        ("0378331", "cusip", ("0378331", "bad length 7")),
        ("0378!3100", "cusip", ("0378!3100", "illegal character '!' at 5")),
        ("03783310!", "cusip", ("check digit mismatch: expected 0, got !",)),
        ("US0378331006", "isin", ("a valid ISIN", "US0378331006", "check digit mismatch: expected 5, got 6")),
        ("1S0378331005", "isin", ("a valid ISIN", "illegal character '1' at 1")),
    ],
)
def test_bad_instrument_ids(raw: str, field: str, parts: tuple[str, ...]) -> None:
    err = rejection(validator(), tick(instrument_id=raw, symbol="AAPL"))
    assert err.code == DLCode.BAD_INSTRUMENT_ID
    assert_message(err, field, *parts)


def test_instrument_ids_unchecked_when_disabled_or_absent() -> None:
    t = validator(check_instrument_ids=False).check(tick(instrument_id="not an id"))
    assert t.instrument_id == "not an id"
    assert validator().check(tick()).instrument_id == ""


# -- price guard: jump rule ----------------------------------------------------------


def test_jump_rule_needs_a_previous_price() -> None:
    g = PriceGuard()
    g.check_jump(1e9, 20.0)  # nothing to compare with yet
    g.observe(100.0)
    g.check_jump(120.0, 20.0)  # exactly 20%: allowed
    g.check_jump(80.0, 20.0)
    with pytest.raises(RejectError) as info:
        g.check_jump(120.5, 20.0)
    err = info.value
    assert err.code == DLCode.PRICE_JUMP
    assert_message(err, "price", "within 20% of the last accepted price 100", "120.5 (20.50% move)")
    with pytest.raises(RejectError, match=r"79\.5 \(20\.50% move\)"):
        g.check_jump(79.5, 20.0)


def test_jump_rule_follows_accepted_prices_and_zero_disables_it() -> None:
    g = PriceGuard()
    for p in (100.0, 110.0, 121.0, 133.1):
        g.check_jump(p, 10.0)
        g.observe(p)
    assert g.last == 133.1
    g.check_jump(1e6, 0.0)
    with pytest.raises(RejectError):
        g.check_jump(1e6, 10.0)


# -- price guard: Welford z-score ----------------------------------------------------


def test_zscore_is_zero_until_there_are_two_returns() -> None:
    g = PriceGuard()
    assert g.zscore(100.0) == 0.0
    g.observe(100.0)
    assert g.zscore(500.0) == 0.0
    g.observe(101.0)
    assert g.n == 1
    assert g.zscore(500.0) == 0.0
    g.observe(100.0)
    assert g.n == 2
    assert g.zscore(500.0) > 0.0


def test_zscore_is_zero_without_variance() -> None:
    g = PriceGuard()
    for _ in range(10):
        g.observe(100.0)
    assert (g.n, g.mean, g.m2) == (9, 0.0, 0.0)
    assert g.zscore(200.0) == 0.0


def test_zscore_of_known_returns() -> None:
    g = PriceGuard()
    prices = [100.0, 101.0, 100.0, 102.0, 101.0, 103.0]
    for p in prices:
        g.observe(p)
    returns = np.diff(np.log(prices))
    x = math.log(110.0 / 103.0)
    expected = (x - returns.mean()) / returns.std(ddof=1)
    assert g.zscore(110.0) == pytest.approx(expected, rel=1e-12)
    assert g.zscore(90.0) < 0 < g.zscore(110.0)


@given(st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=200), st.floats(1e-3, 1e6))
def test_property_welford_matches_numpy(prices: list[float], nxt: float) -> None:
    g = PriceGuard()
    for p in prices:
        g.observe(p)
    returns = np.diff(np.log(np.array(prices)))
    assert g.n == len(returns)
    assert g.last == prices[-1]
    if len(returns):
        assert g.mean == pytest.approx(returns.mean(), rel=1e-9, abs=1e-12)
    if len(returns) >= 2:
        var = returns.var(ddof=1)
        assert g.m2 / (g.n - 1) == pytest.approx(var, rel=1e-7, abs=1e-15)
        if var > 1e-12:
            expected = (math.log(nxt / prices[-1]) - returns.mean()) / math.sqrt(var)
            assert g.zscore(nxt) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_guard_state_round_trip() -> None:
    g = PriceGuard()
    for p in (100.0, 101.0, 99.0, 102.0):
        g.observe(p)
    back = pickle.loads(pickle.dumps(g))
    assert back.__getstate__() == g.__getstate__() == (g.last, g.n, g.mean, g.m2)
    assert back.zscore(105.0) == g.zscore(105.0)
    fresh = PriceGuard()
    fresh.__setstate__(g.__getstate__())
    fresh.observe(103.0)
    g.observe(103.0)
    assert fresh.__getstate__() == g.__getstate__()
