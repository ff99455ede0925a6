"""The order projections: built only from the event log, exactly once, equal however they
are built (incrementally, rebuilt, partitions in any order), and readable at a time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.orders import order_messages, process, projections, write_log
from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders.fixed import SCALE, SCALE2, format_fixed
from ticktape.schemas.orders.views import Position, apply_fill, fold_order
from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path
from ticktape.sinks.eventlog.store import EventStore
from ticktape.sinks.projections.open import open_store
from ticktape.sinks.projections.projector import Projector, order_at, position_at


def trade(side: str, qty: str, price: str, fee: str = "0", ts: int = 1) -> ev.TradeExecuted:
    from ticktape.schemas.orders.fixed import parse_fixed

    return ev.TradeExecuted(
        order_id="o", ts=ts, trade_id="t", quantity=parse_fixed(qty), price=parse_fixed(price),
        fee=parse_fixed(fee), side=side, account="a", symbol="S",
    )  # fmt: skip


def test_average_cost_and_realized_pnl_by_hand() -> None:
    pos = Position(account="a", symbol="S")
    steps = [
        (trade("buy", "10", "100"), "10", "100", "0"),
        (trade("buy", "10", "110", fee="1"), "20", "105", "-1"),  # avg (1000 + 1100) / 20; fee -1
        (trade("sell", "5", "120"), "15", "105", "74"),  # +5 * (120 - 105) = 75
        (
            trade("sell", "20", "100", fee="0.5"),
            "-5",
            "100",
            "-1.5",
        ),  # 15 * (100 - 105) = -75, flip: short 5 @ 100
        (trade("buy", "5", "90"), "0", None, "48.5"),  # short closed: 5 * (100 - 90) = 50
    ]
    for i, (t, qty, avg, realized) in enumerate(steps):
        apply_fill(pos, t, f"k{i}")
        assert format_fixed(pos.quantity) == qty
        assert (format_fixed(pos.avg_cost) if pos.avg_cost is not None else None) == avg
        assert format_fixed(pos.realized, SCALE2) == realized
    assert pos.fees == int(1.5 * SCALE)
    assert pos.bought == 25 * SCALE
    assert pos.sold == 25 * SCALE
    assert pos.unrealized(100 * SCALE) == 0


def test_a_partial_close_rounds_once_and_a_full_close_is_exact() -> None:
    pos = Position(account="a", symbol="S")
    apply_fill(pos, trade("buy", "1", "3"), "1")
    apply_fill(pos, trade("buy", "2", "3.5"), "2")  # cost 10 for 3: average 3.333...
    apply_fill(pos, trade("sell", "1", "4"), "3")  # removes 10/3 of cost basis, rounded half to even
    assert format_fixed(pos.realized, SCALE2) == "0.666666666666666667"
    assert format_fixed(pos.cost, SCALE2) == "6.666666666666666667"
    apply_fill(pos, trade("sell", "2", "4"), "4")  # the rest of the basis leaves with the last unit
    assert (pos.quantity, pos.cost, format_fixed(pos.realized, SCALE2)) == (0, 0, "2")  # 3 * 4 - 10 exactly


@pytest.fixture
def order_log(tmp_path: Path) -> tuple[Path, list]:
    events, _outs, _ = process(order_messages(300, seed=5, faults=0.15))
    directory = tmp_path / "events"
    write_log(directory, events, parts=3, batch=37)
    return directory, events


def test_rebuild_equals_incremental_maintenance_and_partition_order_does_not_matter(tmp_path: Path) -> None:
    events, _, _ = process(order_messages(300, seed=5, faults=0.15))
    inc_dir = tmp_path / "inc"
    writers = [EventLogPartition(partition_path(inc_dir, i)) for i in range(3)]
    incremental = open_store(str(tmp_path / "inc.sqlite"), tmp_path)
    projector = Projector(incremental, snapshot_every=5)
    rng = random.Random(1)
    for start in range(0, len(events), 29):  # write a batch, catch up a random subset of partitions
        by_part: dict[int, list] = {}
        for e in events[start : start + 29]:
            by_part.setdefault(partition_of(e.aggregate, 3), []).append(e)
        for i, chunk in by_part.items():
            writers[i].append(chunk)
        for i in rng.sample(range(3), rng.randint(0, 3)):
            projector.catch_up(partition_path(inc_dir, i))
    for w in writers:
        w.close()
    projector.catch_up_dir(inc_dir)

    rebuilt = open_store(str(tmp_path / "rebuilt.sqlite"), tmp_path)
    Projector(rebuilt, snapshot_every=5).rebuild(inc_dir)
    backwards = open_store(str(tmp_path / "backwards.sqlite"), tmp_path)
    for i in (2, 1, 0):
        Projector(backwards, snapshot_every=5).catch_up(partition_path(inc_dir, i))
    want = projections(rebuilt.dump())
    assert projections(incremental.dump()) == want
    assert projections(backwards.dump()) == want
    assert len(want["proj_orders"]) > 250
    assert len(want["proj_positions"]) >= 6
    assert want["proj_position_snapshots"]
    # a second catch-up and a second rebuild change nothing (exactly once)
    assert projector.catch_up_dir(inc_dir) == 0
    Projector(rebuilt, snapshot_every=5).rebuild(inc_dir)
    assert projections(rebuilt.dump()) == want
    for s in (incremental, rebuilt, backwards):
        s.close()


def test_orders_and_positions_equal_direct_folds_of_the_log(
    order_log: tuple[Path, list], tmp_path: Path
) -> None:
    directory, events = order_log
    with open_store("sqlite", tmp_path) as store:
        Projector(store).catch_up_dir(directory)
        by_order: dict[str, list] = {}
        for e in events:
            if e.aggregate.startswith("order:") and e.type in ev.TYPES:
                by_order.setdefault(e.aggregate[6:], []).append(e)
        for oid, evs in by_order.items():
            got = store.get_order(oid)
            assert got is not None
            assert got.as_dict() == fold_order(oid, evs).as_dict()
        trades = sorted(
            ((ev.event_record(e.payload), e) for e in events if e.type == ev.TRADE),
            key=lambda p: (p[0].ts, f"{p[1].aggregate[6:]}/{p[1].seq:010d}"),
        )
        want: dict[tuple[str, str], Position] = {}
        for t, e in trades:
            assert isinstance(t, ev.TradeExecuted)
            pos = want.setdefault((t.account, t.symbol), Position(account=t.account, symbol=t.symbol))
            apply_fill(pos, t, f"{e.aggregate[6:]}/{e.seq:010d}")
        assert {(p.account, p.symbol): p.as_dict() for p in store.positions()} == {
            k: p.as_dict() for k, p in want.items()
        }
        opened = store.open_orders()
        assert opened
        assert all(v.open for v in opened)
        assert {v.order_id for v in opened} == {
            oid for oid, evs in by_order.items() if fold_order(oid, evs).open
        }


def test_position_at_a_time_equals_a_fold_of_the_fills_until_then(
    order_log: tuple[Path, list], tmp_path: Path
) -> None:
    directory, events = order_log
    with open_store("sqlite", tmp_path) as store:
        Projector(store, snapshot_every=3).catch_up_dir(directory)
        trades = [(ev.event_record(e.payload), e) for e in events if e.type == ev.TRADE]
        times = sorted(t.ts for t, _ in trades)
        for account, symbol in store.position_keys():
            for at in (times[0] - 1, times[len(times) // 3], times[len(times) // 2] + 7, times[-1]):
                mine = sorted(
                    ((t, e) for t, e in trades if t.account == account and t.symbol == symbol and t.ts <= at),
                    key=lambda p: (p[0].ts, f"{p[1].aggregate[6:]}/{p[1].seq:010d}"),
                )
                want = Position(account=account, symbol=symbol)
                for t, e in mine:
                    apply_fill(want, t, f"{e.aggregate[6:]}/{e.seq:010d}")
                assert position_at(store, account, symbol, at).as_dict() == want.as_dict()


def test_an_order_at_a_time_is_the_fold_of_its_events_until_then(order_log: tuple[Path, list]) -> None:
    directory, events = order_log
    with EventStore(directory) as store:
        oid = next(e.aggregate[6:] for e in events if e.type == ev.FILLED)
        evs = list(store.replay(f"order:{oid}"))
    times = [e.ts_event for e in evs]
    assert order_at(evs, oid, times[0] - 1).seq == 0
    assert order_at(evs, oid, times[0]).status == "pending"
    assert order_at(evs, oid, times[-1]).status == "filled"


def test_a_crash_mid_catch_up_leaves_the_last_checkpoint_and_resumes_exactly(
    order_log: tuple[Path, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _ = order_log
    with open_store(str(tmp_path / "want.sqlite"), tmp_path) as want_store:
        Projector(want_store).rebuild(directory)
        want = projections(want_store.dump())
    store = open_store(str(tmp_path / "crash.sqlite"), tmp_path)
    calls = {"n": 0}
    real = store.save_position

    def flaky(cur: object, pos: Position) -> None:
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError("disk full")
        real(cur, pos)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "save_position", flaky)
    with pytest.raises(OSError, match="disk full"):
        Projector(store, max_batches=3).catch_up_dir(directory)
    monkeypatch.setattr(store, "save_position", real)
    Projector(store, max_batches=3).catch_up_dir(directory)
    assert projections(store.dump()) == want
    store.close()
