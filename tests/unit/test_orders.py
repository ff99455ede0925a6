"""Order records, their JSON form, exact fixed-point values and the order state machine."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticktape.schemas.errors import DataError
from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders import machine as m
from ticktape.schemas.orders.fixed import SCALE, div_round, format_fixed, parse_fixed
from ticktape.schemas.records import DLCode

T0 = 1_700_000_000_000_000_000


def msg(typ: str, oid: str = "o-1", ts: int = T0, **fields: object) -> bytes:
    return json.dumps({"type": typ, "order_id": oid, "ts": ts, **fields}).encode()


def submitted(
    oid: str = "o-1", *, qty: str = "10", price: str | None = "100", side: str = "buy", ts: int = T0
) -> bytes:
    extra = {"price": price} if price is not None else {}
    return msg(
        "OrderSubmitted", oid, ts, account="acct-1", symbol="BTC-USDT", venue="binance", side=side,
        order_type="limit" if price is not None else "market", quantity=qty, **extra,
    )  # fmt: skip


def run(*raws: bytes) -> tuple[m.OrderState | None, list[list[ev.OrderEvent]]]:
    state: m.OrderState | None = None
    outs = []
    for raw in raws:
        state, out = m.step(state, ev.decode_order(raw))
        outs.append(out)
    return state, outs


# -- fixed point ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [("1", SCALE), ("0.1", 100_000_000), ("-2.5", -2_500_000_000), ("0.000000001", 1), ("1.5000000000", 1_500_000_000),
     ("1e3", 1000 * SCALE), (" 7 ", 7 * SCALE), (3, 3 * SCALE), (0.1, 100_000_000)],
)  # fmt: skip
def test_parse_fixed_reads_decimals_exactly(text: object, units: int) -> None:
    assert parse_fixed(text) == units


@pytest.mark.parametrize(
    "bad", ["1.0000000001", "nan", "inf", "", "-", "1,5", "\u0661", True, None, "1" * 40]
)
def test_parse_fixed_refuses_what_it_cannot_represent(bad: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_fixed(bad)


@given(st.decimals(min_value=-(10**12), max_value=10**12, places=9, allow_nan=False, allow_infinity=False))
def test_fixed_text_round_trips_exactly(d: Decimal) -> None:
    units = parse_fixed(str(d))
    assert Decimal(format_fixed(units)) == d
    assert parse_fixed(format_fixed(units)) == units


@pytest.mark.parametrize(
    ("a", "b", "q"), [(5, 2, 2), (7, 2, 4), (-5, 2, -2), (-7, 2, -4), (1, 3, 0), (2, 3, 1), (5, -2, -2)]
)
def test_div_round_is_half_to_even(a: int, b: int, q: int) -> None:
    assert div_round(a, b) == q


# -- decoding -------------------------------------------------------------------------------


def test_the_documented_messages_decode() -> None:
    rec = ev.decode_order(submitted(qty="0.5", price="43000.1"))
    assert isinstance(rec, ev.OrderSubmitted)
    assert (rec.quantity, rec.price, rec.time_in_force) == (500_000_000, 43_000_100_000_000, "GTC")
    rec = ev.decode_order(
        msg("TradeExecuted", trade_id="t-9", quantity="0.2", price=43000, fee="0.86", liquidity="maker")
    )
    assert isinstance(rec, ev.TradeExecuted)
    assert (rec.quantity, rec.price, rec.fee, rec.liquidity) == (
        200_000_000,
        43_000 * SCALE,
        860_000_000,
        "maker",
    )
    rec = ev.decode_order(msg("OrderCancelled", ts="2023-11-14T22:13:20Z", reason="user"))
    assert rec.ts == T0
    assert isinstance(rec, ev.OrderCancelled)


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b"{", DLCode.DECODE_ERROR, "$"),
        (b"[1, 2]", DLCode.DECODE_ERROR, "$"),
        (b'{"type": "OrderTeleported", "order_id": "o", "ts": 1}', DLCode.UNSUPPORTED, "$.type"),
        (b'{"type": "OrderAccepted", "order_id": "o"}', DLCode.MISSING_FIELD, "$.ts"),
        (b'{"type": "OrderAccepted", "order_id": "o\\u0000x", "ts": 1}', DLCode.BAD_ORDER, "order_id"),
        (b'{"type": "OrderAccepted", "order_id": "../../etc", "ts": 1}', DLCode.BAD_ORDER, "order_id"),
        (b'{"type": "OrderAccepted", "order_id": "o", "ts": -5}', DLCode.BAD_ORDER, "ts"),
        (b'{"type": "OrderAccepted", "order_id": "o", "ts": 1, "extra": 1}', DLCode.DECODE_ERROR, "$"),
        (submitted(qty="0"), DLCode.BAD_SIZE, "quantity"),
        (submitted(qty="1.0000000001"), DLCode.BAD_SIZE, "quantity"),
        (submitted(price="-1"), DLCode.BAD_PRICE, "price"),
        (submitted(side="hold"), DLCode.BAD_SIDE, "side"),
        (msg("OrderSubmitted", account="a", symbol="btc usdt", side="buy", order_type="market", quantity="1"), DLCode.BAD_SYMBOL, "symbol"),
        (msg("OrderSubmitted", account="a", symbol="BTC-USDT", side="buy", order_type="limit", quantity="1"), DLCode.MISSING_FIELD, "$.price"),
        (msg("OrderSubmitted", account="a", symbol="BTC-USDT", side="buy", order_type="market", quantity="1", price="5"), DLCode.BAD_PRICE, "price"),
        (msg("TradeExecuted", trade_id="t", quantity="1", price="1", liquidity="both"), DLCode.BAD_ORDER, "liquidity"),
    ],
)  # fmt: skip
def test_unusable_messages_are_data_errors_naming_the_field(raw: bytes, code: str, field: str) -> None:
    with pytest.raises(DataError) as err:
        ev.decode_order(raw)
    assert err.value.code == code
    assert err.value.field.startswith(field)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_become_a_data_error(raw: bytes) -> None:
    with contextlib.suppress(DataError):
        ev.decode_order(raw)


@given(st.dictionaries(st.sampled_from(["type", "order_id", "ts", "quantity", "price", "side", "trade_id", "symbol",
                                        "account", "order_type", "fee", "cumulative"]),
                       st.one_of(st.sampled_from(ev.TYPES), st.text(max_size=12), st.integers(), st.floats(), st.none())))  # fmt: skip
def test_any_json_object_decodes_or_becomes_a_data_error(doc: dict[str, object]) -> None:
    with contextlib.suppress(DataError):
        ev.decode_order(json.dumps(doc).encode())


def test_payloads_round_trip_through_the_event_log_form() -> None:
    _state, outs = run(
        submitted(),
        msg("OrderAccepted"),
        msg("TradeExecuted", trade_id="t1", quantity="4", price="99.5", fee="0.01"),
    )
    for rec in [r for out in outs for r in out]:
        assert ev.event_record(ev.encode_payload(rec)) == rec


# -- the state machine -------------------------------------------------------------------------


def test_a_full_lifecycle_and_the_fill_arithmetic() -> None:
    state, outs = run(
        submitted(qty="10", price="100"),
        msg("OrderAccepted", ts=T0 + 1),
        msg("TradeExecuted", ts=T0 + 2, trade_id="t1", quantity="4", price="99"),
        msg(
            "OrderFilled", ts=T0 + 3, trade_id="t2", quantity="6", price="100", cumulative="10", remaining="0"
        ),
    )
    assert state is not None
    assert state.status == m.FILLED
    assert state.filled == 10 * SCALE
    types = [[ev.type_of(r) for r in out] for out in outs]
    assert types == [
        ["OrderSubmitted"],
        ["OrderAccepted"],
        ["TradeExecuted", "OrderPartiallyFilled"],
        ["TradeExecuted", "OrderFilled"],
    ]
    partial = outs[2][1]
    assert isinstance(partial, ev.OrderPartiallyFilled)
    assert (partial.cumulative, partial.remaining) == (4 * SCALE, 6 * SCALE)
    trade = outs[3][0]
    assert isinstance(trade, ev.TradeExecuted)
    assert (trade.account, trade.symbol, trade.side) == (
        "acct-1",
        "BTC-USDT",
        "buy",
    )


@pytest.mark.parametrize(
    ("rule", "tail"),
    [
        ("order-not-submitted", []),
        ("after-terminal", [msg("OrderCancelled", ts=T0 + 2), msg("TradeExecuted", ts=T0 + 3, trade_id="t", quantity="1", price="99")]),
        ("reject-not-pending", [msg("OrderRejected", ts=T0 + 2)]),
        ("fill-exceeds-quantity", [msg("TradeExecuted", ts=T0 + 2, trade_id="t", quantity="11", price="100")]),
        ("fill-beyond-limit", [msg("TradeExecuted", ts=T0 + 2, trade_id="t", quantity="1", price="100.5")]),
        ("filled-not-complete", [msg("OrderFilled", ts=T0 + 2, trade_id="t", quantity="1", price="100")]),
        ("partial-fill-completes", [msg("OrderPartiallyFilled", ts=T0 + 2, trade_id="t", quantity="10", price="100")]),
        ("fill-arithmetic", [msg("OrderPartiallyFilled", ts=T0 + 2, trade_id="t", quantity="1", price="100", cumulative="2")]),
        ("time-goes-back", [msg("OrderCancelled", ts=T0 - 1)]),
        ("conflicting-duplicate", [msg("TradeExecuted", ts=T0 + 2, trade_id="t", quantity="1", price="99"),
                                   msg("TradeExecuted", ts=T0 + 2, trade_id="t", quantity="2", price="99")]),
    ],
)  # fmt: skip
def test_every_illegal_transition_names_its_rule(rule: str, tail: list[bytes]) -> None:
    head = [] if rule == "order-not-submitted" else [submitted(), msg("OrderAccepted", ts=T0 + 1)]
    raws = [*head, *tail] or [msg("OrderAccepted")]
    with pytest.raises(m.TransitionError) as err:
        run(*raws)
    assert err.value.rule == rule
    assert err.value.code == DLCode.ILLEGAL_TRANSITION
    assert f"rule `{rule}`" in err.value.describe()


def test_a_fill_before_the_accept_and_an_accept_twice_are_refused() -> None:
    with pytest.raises(m.TransitionError) as err:
        run(submitted(), msg("TradeExecuted", ts=T0 + 1, trade_id="t", quantity="1", price="100"))
    assert err.value.rule == "fill-before-accept"


def test_duplicates_are_duplicates_whatever_form_the_fill_takes() -> None:
    state, _ = run(
        submitted(),
        msg("OrderAccepted", ts=T0 + 1),
        msg("TradeExecuted", ts=T0 + 2, trade_id="t1", quantity="4", price="99"),
    )
    assert state is not None
    for again in (
        submitted(),
        msg("OrderAccepted", ts=T0 + 1),
        msg("TradeExecuted", ts=T0 + 2, trade_id="t1", quantity="4", price="99"),
        msg(
            "OrderPartiallyFilled",
            ts=T0 + 2,
            trade_id="t1",
            quantity="4",
            price="99",
            cumulative="4",
            remaining="6",
        ),
    ):
        with pytest.raises(m.Duplicate):
            m.step(state, ev.decode_order(again))
    assert state.filled == 4 * SCALE  # nothing applied twice


def test_events_get_per_order_seq_and_deterministic_ids() -> None:
    state, outs = run(submitted(), msg("OrderAccepted", ts=T0 + 1))
    assert state is not None
    fresh = m.OrderState(order_id="o-1")
    a = m.to_events(fresh, [r for out in outs for r in out], "src@1")
    again = m.to_events(m.OrderState(order_id="o-1"), [r for out in outs for r in out], "src@1")
    assert [e.seq for e in a] == [1, 2]
    assert [e.aggregate for e in a] == ["order:o-1"] * 2
    assert [e.event_id for e in a] == [e.event_id for e in again]
    assert a[0].event_id[:16] == f"{T0:016x}"
    assert msgspec.json.decode(a[0].payload)["quantity"] == "10"
