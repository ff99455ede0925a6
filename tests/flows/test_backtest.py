"""The backtester: replay order, simulated execution (latency, slippage, fees, partial
fills), the orders it sends as real order events with projections, reproducibility."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.data import TRADES
from tests.support.flows import config
from ticktape.flows.backtest.broker import Execution, SimBroker
from ticktape.flows.backtest.data import Candles, MarketData, Trades
from ticktape.flows.backtest.engine import Engine
from ticktape.flows.backtest.run import run_backtest
from ticktape.flows.backtest.strategy import Bar, Strategy, TradeTick
from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders.fixed import SCALE, SCALE2, format_fixed, parse_fixed
from ticktape.schemas.orders.views import Position, apply_fill
from ticktape.sinks.projections.open import open_store
from ticktape.sinks.projections.projector import Projector

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def trades(rows: list[tuple[int, int, float, float]], sides: list[int] | None = None) -> Trades:
    """(ts offset ms, symbol index, price, size) rows, in replay order."""
    return Trades(
        ts=np.array([T0 + r[0] * MS for r in rows], np.int64), sym=np.array([r[1] for r in rows], np.int32),
        price=np.array([r[2] for r in rows]), size=np.array([r[3] for r in rows]),
        side=np.array(sides or [1] * len(rows), np.int8),
    )  # fmt: skip


class Scripted(Strategy):
    """Runs ``actions[i]`` (a callable taking the strategy) at the i-th trade or candle."""

    def __init__(self, actions: dict[int, Callable[[Strategy], Any]] | None = None) -> None:
        super().__init__()
        self.actions = actions or {}
        self.seen: list[tuple[str, int, str]] = []
        self.n = 0
        self.ids: list[str] = []

    def _act(self) -> None:
        action = self.actions.get(self.n)
        if action is not None:
            out = action(self)
            if isinstance(out, str):
                self.ids.append(out)
        self.n += 1

    def on_trade(self, trade: TradeTick) -> None:
        self.seen.append(("trade", trade.ts, trade.symbol))
        self._act()

    def on_candle(self, bar: Bar) -> None:
        self.seen.append(("candle", bar.ts, bar.symbol))
        self._act()


def run(data: MarketData, strategy: Strategy, **execution: Any) -> SimBroker:
    broker = SimBroker(data.names, Execution(**execution), 10_000 * SCALE)
    Engine(data, strategy, broker, sample_ns=1_000 * MS).run()
    return broker


def fills(broker: SimBroker) -> list[tuple[int, str, str, str, str]]:
    """(ms after T0, quantity, price, fee, liquidity) of every execution."""
    return [
        ((f[0] - T0) // MS, format_fixed(f[3]), format_fixed(f[4]), format_fixed(f[5]), f[6])
        for f in broker.fills
    ]


def types(broker: SimBroker, order_id: str) -> list[str]:
    return [e.type for e in broker.events if e.aggregate == f"order:{order_id}"]


def test_a_market_order_waits_for_the_latency_and_fills_partially_within_traded_volume() -> None:
    data = MarketData(
        ["BTC-USDT"], trades([(0, 0, 100, 10), (5, 0, 101, 10), (10, 0, 102, 3), (20, 0, 103, 10)])
    )
    s = Scripted({0: lambda st: st.buy("BTC-USDT", 5)})
    b = run(data, s, latency_ns=10 * MS, slippage_bps=parse_fixed("10"), taker_fee_bps=parse_fixed("5"))
    # working from 10 ms: 3 at the 10 ms trade (its size), the rest at 20 ms; price +10 bps, fee 5 bps
    assert fills(b) == [(10, "3", "102.102", "0.153153", "taker"), (20, "2", "103.103", "0.103103", "taker")]
    assert types(b, s.ids[0]) == [
        "OrderSubmitted", "OrderAccepted", "TradeExecuted", "OrderPartiallyFilled", "TradeExecuted", "OrderFilled",
    ]  # fmt: skip
    assert [e.ts_event for e in b.events][:2] == [T0, T0 + 10 * MS]
    cost = 3 * parse_fixed("102.102") + 2 * parse_fixed("103.103")
    assert (
        b.cash18
        == 10_000 * SCALE2 - cost * SCALE - (parse_fixed("0.153153") + parse_fixed("0.103103")) * SCALE
    )
    assert b.pos == [5 * SCALE]
    assert b.dead == []


def test_limit_orders_rest_as_makers_and_fill_as_takers_when_marketable() -> None:
    rows = [(0, 0, 100, 1), (1, 0, 99, 5), (2, 0, 98.9, 5), (3, 0, 100, 5), (4, 0, 100, 5)]
    s = Scripted({0: lambda st: st.buy("X-Y", 2, price=99), 2: lambda st: st.buy("X-Y", 1, price=105)})
    b = run(
        MarketData(["X-Y"], trades(rows)), s, maker_fee_bps=parse_fixed("-1"), taker_fee_bps=parse_fixed("4")
    )
    # the 99 limit is not filled by a trade at 99 (touch), but by one through it, at 99 (maker, rebate);
    # the 105 limit was marketable on arrival: it takes the next trade's price (taker)
    assert fills(b) == [(2, "2", "99", "-0.0198", "maker"), (3, "1", "100", "0.04", "taker")]


def test_participation_bounds_fills_and_orders_share_a_trade_in_arrival_order() -> None:
    rows = [(0, 0, 10, 1), (1, 0, 10, 4), (2, 0, 10, 4)]
    s = Scripted({0: lambda st: (st.buy("X-Y", 1), st.buy("X-Y", 2))[0]})
    b = run(MarketData(["X-Y"], trades(rows)), s, participation=SCALE // 2)
    assert fills(b) == [
        (1, "1", "10", "0", "taker"),
        (1, "1", "10", "0", "taker"),
        (2, "1", "10", "0", "taker"),
    ]


def test_a_cancel_takes_effect_after_the_latency_and_open_orders_end_cancelled() -> None:
    rows = [(0, 0, 100, 1), (1, 0, 100, 1), (5, 0, 80, 1), (12, 0, 80, 1)]
    actions = {0: lambda st: st.buy("X-Y", 1, price=90), 1: lambda st: st.cancel(st.ids[0]) and None, 2: lambda st: st.sell("X-Y", 1, price=200)}  # fmt: skip
    s = Scripted(actions)
    b = run(MarketData(["X-Y"], trades(rows)), s, latency_ns=5 * MS)
    # the cancel sent at 1 ms lands at 6 ms; the 80 trade at 5 ms fills the buy first
    assert fills(b)[0][:3] == (5, "1", "90")
    assert types(b, s.ids[0])[-1] == "OrderFilled"
    assert types(b, s.ids[1]) == ["OrderSubmitted", "OrderAccepted", "OrderCancelled"]  # at the end
    assert b.dead == []


def test_candle_replays_fill_at_the_next_open_and_ties_go_candles_then_symbols_then_trades() -> None:
    c = Candles(
        ts=np.array([T0 + 60_000 * MS, T0 + 60_000 * MS, T0 + 120_000 * MS], np.int64), sym=np.array([1, 0, 0], np.int32),
        start=np.array([T0, T0, T0 + 60_000 * MS], np.int64), open=np.array([1.0, 10.0, 11.0]),
        high=np.array([1.0, 10.5, 12.0]), low=np.array([1.0, 9.5, 10.5]), close=np.array([1.0, 10.2, 11.5]),
        volume=np.array([5.0, 5.0, 5.0]), trades=np.array([1, 3, 3]), interval=60,
    )  # fmt: skip
    data = MarketData(["AAA-X", "BBB-X"], candles=c, candle_symbols=frozenset({0, 1}))
    s = Scripted({0: lambda st: st.buy("AAA-X", 2)})
    b = run(data, s)
    assert [(k, (t - T0) // MS, sym) for k, t, sym in s.seen] == [
        ("candle", 60_000, "AAA-X"), ("candle", 60_000, "BBB-X"), ("candle", 120_000, "AAA-X"),
    ]  # fmt: skip
    assert fills(b) == [(60_000, "2", "11", "0", "taker")]  # the next candle's open, at its start


def test_strategy_mistakes_are_errors_not_orders() -> None:
    from ticktape.flows.backtest.broker import StrategyError

    data = MarketData(["X-Y"], trades([(0, 0, 1, 1), (1, 0, 1, 1)]))
    for bad in (
        lambda st: st.buy("X-Y", 0),
        lambda st: st.submit("X-Y", "hold", 1),
        lambda st: st.buy("X-Y", "1e-12"),
    ):
        with pytest.raises(StrategyError):
            run(data, Scripted({0: bad}))
    b = run(data, Scripted({0: lambda st: st.buy("NOPE-X", 1)}))
    assert [e.type for e in b.events] == ["OrderSubmitted", "OrderRejected"]


def test_pacing_follows_event_time_at_the_chosen_speed() -> None:
    data = MarketData(["X-Y"], trades([(0, 0, 1, 1), (1_000, 0, 1, 1), (3_000, 0, 1, 1)]))
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    broker = SimBroker(data.names, Execution(), SCALE)
    Engine(
        data, Scripted(), broker, sample_ns=1_000 * MS, speed=10.0, clock=lambda: now[0], sleep=sleep
    ).run()
    assert slept == pytest.approx([0.1, 0.2])  # 3 s of event time at 10x


@pytest.fixture(scope="module")
def xrp_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    base = tmp_path_factory.mktemp("bt")
    section = {
        "trades": [str(TRADES / "XRP_ETH-trades.json.gz")], "cash": "1", "taker_fee_bps": 10.0,
        "strategy": "ticktape.flows.backtest.examples:MovingAverageCrossover", "latency": "50ms",
        "slippage_bps": 2.0, "params": {"fast": 5, "slow": 20, "quantity": 100},
    }  # fmt: skip
    one = run_backtest(config(base / "a", backtest=section), base / "a" / "out")
    run_backtest(config(base / "b", backtest=section), base / "b" / "out")
    return base / "a" / "out", base / "b" / "out", one


def test_the_same_backtest_writes_the_same_report_and_chart_bit_for_bit(
    xrp_runs: tuple[Path, Path, Any],
) -> None:
    a, b, result = xrp_runs
    assert (a / "report.json").read_bytes() == (b / "report.json").read_bytes()
    assert (a / "equity.png").read_bytes() == (b / "equity.png").read_bytes()
    assert (a / "equity.csv").read_bytes() == (b / "equity.csv").read_bytes()
    assert (a / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.report["metrics"]["trades"] > 20


def test_simulated_orders_are_real_order_events_with_projections(xrp_runs: tuple[Path, Path, Any]) -> None:
    out, _, result = xrp_runs
    rep = result.report
    assert rep["order_dead_letters"] == 0
    with open_store("sqlite", out / "orders") as store:
        orders = store.list_orders(limit=100_000)
        positions = store.positions()
    assert len(orders) == rep["orders"]
    assert sum(len(o.fills) for o in orders) == rep["fills"]
    assert [p.as_dict() for p in positions] == rep["positions"]
    with open_store(str(out / "rebuilt.sqlite"), out) as rebuilt:
        Projector(rebuilt).rebuild(out / "orders" / "events")
        assert rebuilt.positions() == positions
    # the engine's exact account equals the projection: equity = cash + realized + unrealized
    (pos,) = positions
    mark = parse_fixed(rep["marks"]["XRP-ETH"])
    equity = Decimal(rep["settings"]["cash"]) + Decimal(
        format_fixed(pos.realized + pos.unrealized(mark), SCALE2)
    )
    assert Decimal(rep["final_equity"]) == equity
    # the trade list holds the round trips of those fills; their PnL sums to the realized PnL
    trips = rep["trades"]
    assert sum(t["fills"] for t in trips) >= rep["fills"]
    open_pnl = sum(Decimal(t["pnl"]) for t in trips)
    assert open_pnl == Decimal(format_fixed(pos.realized, SCALE2))
    check = Position(account="backtest", symbol="XRP-ETH")
    fills_in_order = sorted(
        ((f, o) for o in orders for f in o.fills), key=lambda p: (p[0].ts, p[1].order_id, p[0].trade_id)
    )
    for f, o in fills_in_order:
        trade = ev.TradeExecuted(order_id=o.order_id, ts=f.ts, trade_id=f.trade_id, quantity=f.quantity,
                                 price=f.price, fee=f.fee, side=o.side)  # fmt: skip
        apply_fill(check, trade, f.trade_id)
    assert check.realized == pos.realized


class QuoteTaker(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.quotes: list[tuple[int, float, float]] = []
        self.trades = 0

    def on_quote(self, quote: Any) -> None:
        self.quotes.append(((quote.ts - T0) // MS, quote.bid, quote.ask))
        if len(self.quotes) == 1:
            self.buy("X-Y", 3)

    def on_trade(self, trade: TradeTick) -> None:
        self.trades += 1


def test_quotes_fill_market_orders_at_the_ask_within_its_size_and_merge_before_trades(tmp_path: Path) -> None:
    from ticktape.flows.backtest.data import read_quotes

    path = tmp_path / "quotes.csv"
    path.write_text("ts,symbol,bid,ask,bid_size,ask_size\n" + "\n".join(
        f"{T0 + ms * MS},X-Y,{bid},{ask},5,{size}" for ms, bid, ask, size in ((0, 99, 101, 5), (2, 99.5, 100.5, 2), (4, 99, 100, 9))
    ) + "\n")  # fmt: skip
    names, quotes = read_quotes(path, ["X-Y"])
    data = MarketData(names, trades([(2, 0, 100.0, 1)]), quotes=quotes)
    s = QuoteTaker()
    b = run(data, s)
    # the quote at 2 ms comes before the trade at 2 ms: the buy takes the 2 offered at the ask,
    # then the rest from the trade that follows at 100; nothing is left for the 4 ms quote
    assert s.quotes == [(0, 99.0, 101.0), (2, 99.5, 100.5), (4, 99.0, 100.0)]
    assert s.trades == 1
    assert fills(b) == [(2, "2", "100.5", "0", "taker"), (2, "1", "100", "0", "taker")]


def test_time_in_force_ioc_fok_and_day() -> None:
    rows = [(0, 0, 100, 1), (1, 0, 100, 2), (2, 0, 100, 9), (86_400_000, 0, 50, 9)]
    actions = {
        0: lambda st: [st.submit("X-Y", "buy", 5, tif="IOC"), st.submit("X-Y", "buy", 5, tif="FOK"),
                       st.submit("X-Y", "buy", 1, price=90, tif="DAY"), st.submit("X-Y", "buy", 1, price=90)][0],
    }  # fmt: skip
    s = Scripted(actions)
    b = run(MarketData(["X-Y"], trades(rows)), s)
    ioc, fok, day, gtc = (f"bt-{i:08d}" for i in range(1, 5))
    assert fills(b) == [
        (1, "2", "100", "0", "taker"),
        (86_400_000, "1", "90", "0", "maker"),
    ]  # IOC took 2; GTC at 90
    assert types(b, ioc)[-2:] == ["OrderPartiallyFilled", "OrderCancelled"]
    assert types(b, fok) == ["OrderSubmitted", "OrderAccepted", "OrderCancelled"]  # 2 < 5 on its first trade
    assert types(b, day) == [
        "OrderSubmitted",
        "OrderAccepted",
        "OrderExpired",
    ]  # gone before the next day's trade
    assert types(b, gtc)[-1] == "OrderFilled"
    assert b.dead == []


def test_a_quotes_file_that_is_not_quotes_is_one_input_error(tmp_path: Path) -> None:
    from ticktape.flows.backtest.data import read_quotes
    from ticktape.schemas.errors import InputError

    for text in (
        "ts,symbol,bid\n1,X-Y,1\n",
        "ts,symbol,bid,ask,bid_size,ask_size\nabc,X-Y,1,2,3,4\n",
        "\x00\xff",
    ):
        path = tmp_path / "q.csv"
        path.write_text(text)
        with pytest.raises(InputError, match=r"q\.csv"):
            read_quotes(path)
