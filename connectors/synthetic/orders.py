"""A deterministic stream of order messages with realistic lifecycles and injected faults.

``synthetic_orders(n, seed=...)`` yields ``(key, JSON)`` pairs, keyed by order id (so on
Kafka an order's messages stay in one partition, in order), in event-time order. Each
order is submitted (limit or market), then accepted (or rejected, ~4%), filled in one to
three executions (``TradeExecuted``, or ``OrderPartiallyFilled``/``OrderFilled`` with the
arithmetic) and left filled, cancelled (~15%), expired (~3%) or open (~8%). With ``faults`` > 0 that
fraction of extra messages are faults the state machine must catch: a redelivered
message (duplicate), a fill that exceeds the quantity, an event after a terminal state,
a fill for an unknown order, and malformed JSON. Same arguments, same stream.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any

import msgspec

from ticktape.schemas.orders.fixed import SCALE, format_fixed

DEFAULT_START_NS = 1_700_000_000_000_000_000
_enc = msgspec.json.Encoder()
_BASE = {"BTC-USDT": 43_000.0, "ETH-USDT": 2_300.0, "SOL-USDT": 95.0, "XRP-ETH": 0.00142}


def _px(value: float) -> str:
    return format_fixed(round(value * 10_000) * (SCALE // 10_000))


def _order(rng: random.Random, i: int, t0: int, accounts: int, symbols: list[str]) -> list[dict[str, Any]]:
    oid = f"o-{i:07d}"
    sym = rng.choice(symbols)
    side = rng.choice(("buy", "sell"))
    qty_units = rng.randint(1, 40)  # tenths
    qty = qty_units * (SCALE // 10)
    base = _BASE.get(sym, 100.0) * (1 + rng.gauss(0, 0.002))
    limit = rng.random() < 0.7
    ts = t0
    msgs: list[dict[str, Any]] = [
        {"type": "OrderSubmitted", "order_id": oid, "ts": ts, "account": f"acct-{rng.randrange(accounts)}",
         "symbol": sym, "venue": "synthetic", "side": side, "order_type": "limit" if limit else "market",
         "quantity": format_fixed(qty), **({"price": _px(base)} if limit else {})},
    ]  # fmt: skip
    ts += rng.randint(1_000_000, 50_000_000)
    if rng.random() < 0.04:
        return [*msgs, {"type": "OrderRejected", "order_id": oid, "ts": ts, "reason": "insufficient margin"}]
    msgs.append({"type": "OrderAccepted", "order_id": oid, "ts": ts})
    done = rng.random()
    fills = rng.randint(1, 3)
    parts = sorted(rng.sample(range(1, qty_units), min(fills - 1, qty_units - 1))) if qty_units > 1 else []
    edges = [0, *parts, qty_units]
    if done < 0.18 or done > 0.92:  # cancelled, expired or left open after at most a partial fill
        edges = edges[: max(1, len(edges) - 1)]
    filled = 0
    for k in range(len(edges) - 1):
        ts += rng.randint(1_000_000, 2_000_000_000)
        part = (edges[k + 1] - edges[k]) * (SCALE // 10)
        filled += part
        price = base * (1 - 0.0005 * rng.random()) if side == "buy" else base * (1 + 0.0005 * rng.random())
        fee = format_fixed(round(part * price * 0.0004 / SCALE * 1e6) * (SCALE // 1_000_000))
        trade = {"order_id": oid, "ts": ts, "trade_id": f"{oid}-t{k}", "quantity": format_fixed(part),
                 "price": _px(price), "fee": fee, "liquidity": "maker" if limit else "taker"}  # fmt: skip
        if rng.random() < 0.5:
            msgs.append({"type": "TradeExecuted", **trade})
        else:
            typ = "OrderFilled" if filled == qty else "OrderPartiallyFilled"
            msgs.append(
                {
                    "type": typ,
                    **trade,
                    "cumulative": format_fixed(filled),
                    "remaining": format_fixed(qty - filled),
                }
            )
    if filled < qty and done <= 0.92:
        ts += rng.randint(1_000_000, 5_000_000_000)
        end = "OrderExpired" if done < 0.03 else "OrderCancelled"
        msgs.append(
            {
                "type": end,
                "order_id": oid,
                "ts": ts,
                **({"reason": "user"} if end == "OrderCancelled" else {}),
            }
        )
    return msgs


def _fault(rng: random.Random, msgs: list[dict[str, Any]], i: int) -> dict[str, Any] | bytes:
    kind = rng.random()
    last = msgs[-1]
    if kind < 0.4:
        return dict(rng.choice(msgs))  # a redelivery: a duplicate
    if kind < 0.6:
        return {"type": "TradeExecuted", "order_id": last["order_id"], "ts": last["ts"] + 1,
                "trade_id": f"x-{i}", "quantity": "1000", "price": "1"}  # fmt: skip
    if kind < 0.8:
        return {"type": "OrderAccepted", "order_id": f"ghost-{i}", "ts": last["ts"]}
    return b'{"type": "OrderSubmitted", "order_id": '


def synthetic_orders(
    n: int,
    *,
    seed: int = 1,
    accounts: int = 3,
    symbols: tuple[str, ...] = ("BTC-USDT", "ETH-USDT", "SOL-USDT"),
    start_ns: int = DEFAULT_START_NS,
    faults: float = 0.0,
) -> Iterator[tuple[bytes, bytes]]:
    """``n`` orders' messages (plus faults) as ``(order id, JSON)``, in event-time order."""
    rng = random.Random(seed)
    heap: list[tuple[int, int, int, bytes, bytes]] = []
    counter = 0
    syms = list(symbols)
    for i in range(n):
        t0 = start_ns + i * 200_000_000 + rng.randint(0, 100_000_000)
        msgs = _order(rng, i, t0, accounts, syms)
        extra: list[dict[str, Any] | bytes] = [_fault(rng, msgs, i)] if rng.random() < faults else []
        for m in [*msgs, *extra]:
            key = (m["order_id"] if isinstance(m, dict) else f"o-{i:07d}").encode()
            ts = m["ts"] if isinstance(m, dict) else msgs[-1]["ts"]
            raw = _enc.encode(m) if isinstance(m, dict) else m
            heapq.heappush(heap, (ts, counter, i, key, raw))
            counter += 1
    while heap:
        _, _, _, key, raw = heapq.heappop(heap)
        yield key, raw
