"""The projector: folds the orders event log into the projection store (CQRS read side).

Projections are built **only from the event log**: :meth:`Projector.catch_up` reads the
batches of one partition file after the store's checkpoint for that file, applies their
order events and moves the checkpoint, in one store transaction per run of batches.

Guarantees:

* **Crash-safe, exactly once**: a crash mid-run rolls the transaction back; the next
  catch-up redoes it from the checkpoint. An order event whose ``seq`` is not above the
  view's is ignored, an execution already stored is ignored.
* **Order-independent**: an order's view folds its events in ``seq`` order (they live in
  one partition, in seq order); a position folds its executions in canonical order
  ``(ts, fill key)``: an execution that arrives before one it follows in that order (an
  other partition read earlier) makes the position refold from its stored executions.
  Executions at the same time are ordered by :func:`fill_key` (order id, then seq).
  So incremental maintenance, a rebuild from scratch (:meth:`Projector.rebuild`) and any
  interleaving of partitions give equal projections (tested).
* Every ``snapshot_every`` executions of a position a snapshot row is kept, so
  :func:`position_at` answers "the position at time T" from the nearest snapshot plus
  the later executions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ticktape.schemas.orders import events as ev
from ticktape.schemas.orders.views import OrderView, Position, apply_fill, apply_order, fold_order
from ticktape.schemas.records import Event
from ticktape.sinks.base.sqlite import connect
from ticktape.sinks.eventlog.compression import dictionary_loader
from ticktape.sinks.eventlog.snapshots import decode_batch
from ticktape.sinks.projections.store import ProjectionStore

_ORDER_TYPES = frozenset(ev.TYPES)


def fill_key(e: Event) -> str:
    """The tie-break of executions at one time: ``<order id>/<seq>`` (an order's own fills
    keep their execution order; orders compare by id)."""
    return f"{e.aggregate[len('order:') :]}/{e.seq:010d}"


def _trade_of(doc: str | bytes) -> ev.TradeExecuted:
    rec = ev.event_record(doc.encode() if isinstance(doc, str) else doc)
    assert isinstance(rec, ev.TradeExecuted)
    return rec


class Projector:
    """Apply event-log partitions to ``store``; ``snapshot_every`` executions per position
    between position snapshots; at most ``max_batches`` batches per transaction."""

    def __init__(self, store: ProjectionStore, *, snapshot_every: int = 100, max_batches: int = 500) -> None:
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1, got {snapshot_every}")
        self.store = store
        self.snapshot_every = snapshot_every
        self.max_batches = max_batches
        self.applied = 0

    def catch_up_dir(self, directory: Path) -> int:
        """:meth:`catch_up` every partition file of an event-log directory; events applied."""
        return sum(self.catch_up(p) for p in sorted(directory.glob("part-*.sqlite")))

    def rebuild(self, directory: Path) -> int:
        """Empty the store and fold the whole log again."""
        self.store.reset()
        return self.catch_up_dir(directory)

    def catch_up(self, path: Path) -> int:
        """Apply every committed batch of one partition file after the checkpoint."""
        if not path.is_file():
            return 0
        log = path.name
        conn = connect(path, readonly=True)
        try:
            dicts = dictionary_loader(conn)
            total = 0
            while True:
                with self.store.transaction(write=True) as cur:
                    after = self.store.checkpoint(cur, log)
                    rows = conn.execute(
                        "SELECT id, body, codec FROM batches WHERE id > ? ORDER BY id LIMIT ?",
                        (after, self.max_batches),
                    ).fetchall()
                    if not rows:
                        return total
                    ctx = _Batch(self.store, cur, self.snapshot_every)
                    for _batch_id, body, codec in rows:
                        for e in decode_batch(body, codec, dicts) or ():
                            if e.type in _ORDER_TYPES:
                                ctx.apply(e)
                                total += 1
                    ctx.save()
                    self.store.set_checkpoint(cur, log, rows[-1][0])
                self.applied += total
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # a partition file created but never written
                return 0
            raise
        finally:
            conn.close()


class _Batch:
    """The views touched by one transaction (written once at the end). New executions are
    collected per position and applied in canonical order at :meth:`save`: in one step
    when they all follow the position's last execution, else by refolding from the
    newest snapshot before the first of them (at most once per position and transaction)."""

    def __init__(self, store: ProjectionStore, cur: Any, every: int) -> None:
        self.store, self.cur, self.every = store, cur, every
        self.orders: dict[str, OrderView] = {}
        self.fills: dict[tuple[str, str], list[tuple[int, str, ev.TradeExecuted]]] = {}

    def apply(self, e: Event) -> None:
        oid = e.aggregate[len("order:") :]
        view = self.orders.get(oid)
        if view is None:
            view = self.store.load_order(self.cur, oid) or OrderView(order_id=oid)
            self.orders[oid] = view
        if e.seq <= view.seq:
            return  # applied before (a replayed batch)
        trade = apply_order(view, e)
        if isinstance(trade, ev.TradeExecuted):
            fk = fill_key(e)
            if self.store.add_fill(self.cur, trade.account, trade.symbol, trade.ts, fk, e.payload.decode()):
                self.fills.setdefault((trade.account, trade.symbol), []).append((trade.ts, fk, trade))

    def _fold(self, pos: Position, trade: ev.TradeExecuted, key: str) -> None:
        apply_fill(pos, trade, key)
        if pos.fills % self.every == 0:
            self.store.add_snapshot(self.cur, pos)

    def save(self) -> None:
        store, cur = self.store, self.cur
        for view in self.orders.values():
            if view.seq:
                store.save_order(cur, view)
        for (account, symbol), new in self.fills.items():
            new.sort(key=lambda f: (f[0], f[1]))
            pos = store.load_position(cur, account, symbol) or Position(account=account, symbol=symbol)
            first = (new[0][0], new[0][1])
            if first > (pos.last_ts, pos.last_event):
                for _ts, key, trade in new:
                    self._fold(pos, trade, key)
            else:  # out of canonical order: refold from the newest snapshot before it
                base = store.snapshot_below(cur, account, symbol, first)
                after = (base.last_ts, base.last_event) if base is not None else None
                store.drop_snapshots_after(cur, account, symbol, after)
                pos = base or Position(account=account, symbol=symbol)
                for _, key, doc in store.fills(cur, account, symbol, after=after):
                    self._fold(pos, _trade_of(doc), key)
            store.save_position(cur, pos)


def position_at(store: ProjectionStore, account: str, symbol: str, at: int) -> Position:
    """The position after its executions with ``ts <= at`` (canonical order): the newest
    snapshot at or before ``at`` plus the later executions up to ``at``. Always equal to
    folding every such execution from the beginning."""
    with store.transaction() as cur:
        base = store.snapshot_before(cur, account, symbol, at)
        pos = base or Position(account=account, symbol=symbol)
        after = (base.last_ts, base.last_event) if base is not None else None
        for _, eid, doc in store.fills(cur, account, symbol, after=after, until=at):
            apply_fill(pos, _trade_of(doc), eid)
    return pos


def order_at(events: list[Event], order_id: str, at: int) -> OrderView:
    """The order's view after its events with ``ts_event <= at`` (``events``: the order
    aggregate's events in seq order, from the event store)."""
    return fold_order(order_id, (e for e in events if e.ts_event <= at and e.type in _ORDER_TYPES))
