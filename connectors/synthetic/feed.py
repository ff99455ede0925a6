"""Synthetic trade feed: many symbols, random-walk prices, optional fault injection.

Unit of parallelism: a partition (``synthetic/<i>``); symbol ``k`` lives in partition
``k % partitions`` so each symbol has one ordered stream, like a Kafka topic keyed by
symbol. Messages are generic JSON ticks (``ticktape.schemas.venues.generic``), so the decode path
is exercised exactly as for real feeds.

Paced mode (``pace=True``, the live demo) is an open-loop feed at a fixed offered rate
(``ticktape.connectors.synthetic.pacing``: ``ts_event`` is each message's due time, a backlog is metered);
unpaced mode (tests, benches) emits as fast as it is polled with synthetic
event times starting at ``start_ns`` and spaced ``1/rate`` apart, fully deterministic
for a given seed. Delivery: exactly the generated sequence. Resume state: the
generator's RNG state and counters plus the batch decoder's state.
"""

from __future__ import annotations

import copy
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from msgspec import Meta

from ticktape.connectors.synthetic.pacing import Pacer, backlog_metrics
from ticktape.schemas.bounds import INT64_MAX, Fraction, between
from ticktape.schemas.decoding import BatchDecoder, DecoderState
from ticktape.schemas.durations import PositiveDuration
from ticktape.schemas.records import TickBatch
from ticktape.schemas.validation import TickValidator, ValidationRules
from ticktape.schemas.venues import generic

if TYPE_CHECKING:
    from ticktape.infra.observability.metrics import RunStats

DEFAULT_START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
_enc = msgspec.json.Encoder()

MALFORMED_KINDS = (
    "truncated",
    "missing_price",
    "negative_price",
    "bad_side",
    "bad_symbol",
    "not_json",
)


class SyntheticGenerator:
    """Deterministic message generator for one partition (plain Python, picklable)."""

    def __init__(
        self,
        partition: int,
        partitions: int,
        symbols: int,
        rate: float,
        total: int,
        *,
        venue: str = "synthetic",
        seed: int = 7,
        start_ns: int = DEFAULT_START_NS,
        duplicate_rate: float = 0.0,
        out_of_order_rate: float = 0.0,
        gap_rate: float = 0.0,
        malformed_rate: float = 0.0,
    ) -> None:
        self.symbols = [f"S{k:04d}-USD" for k in range(symbols) if k % partitions == partition] or [
            "S0000-USD"
        ]
        self.venue = venue
        self.rng = random.Random(seed * 1_000_003 + partition)
        self.prices = [100.0 + (k % 97) for k in range(len(self.symbols))]
        self.trade_ids = [1] * len(self.symbols)
        self.last_ids = [0] * len(self.symbols)
        share = max(rate / partitions, 1e-9)
        self.step_ns = max(int(1e9 / share), 1)
        self.remaining = max(total // partitions + (1 if partition < total % partitions else 0), 0)
        self.ts = start_ns
        self.rates = (duplicate_rate, out_of_order_rate, gap_rate, malformed_rate)
        self.recent: deque[bytes] = deque(maxlen=32)
        self.pending: deque[bytes] = deque()
        self.injected = {"duplicate": 0, "out_of_order": 0, "gap": 0, "malformed": 0}
        self.skipped: dict[str, list[int]] = {}  # trade ids left out to make gaps

    def _trade(self, ts_event: int) -> bytes:
        rng = self.rng
        k = rng.randrange(len(self.symbols))
        price = self.prices[k] = max(self.prices[k] * (1.0 + rng.gauss(0.0, 0.0005)), 0.01)
        trade_id = self.last_ids[k] = self.trade_ids[k]
        self.trade_ids[k] += 1
        if self.rates[2] and rng.random() < self.rates[2]:
            skip = 1 + rng.randrange(3)
            self.skipped.setdefault(self.symbols[k], []).extend(range(trade_id + 1, trade_id + 1 + skip))
            self.trade_ids[k] += skip
            self.injected["gap"] += 1
        return _enc.encode({
            "venue": self.venue, "symbol": self.symbols[k], "price": round(price, 6),
            "size": round(rng.expovariate(2.0) + 0.001, 6), "side": "buy" if rng.random() < 0.5 else "sell",
            "trade_id": trade_id, "ts_event": ts_event,
        })  # fmt: skip

    def _malformed(self, ts_event: int) -> bytes:
        kind = self.rng.choice(MALFORMED_KINDS)
        self.injected["malformed"] += 1
        base = {
            "venue": self.venue,
            "symbol": self.symbols[0],
            "price": 1.0,
            "size": 1.0,
            "side": "buy",
            "ts_event": ts_event,
        }
        if kind == "truncated":
            return _enc.encode(base)[:20]
        if kind == "missing_price":
            del base["price"]
        elif kind == "negative_price":
            base["price"] = -1.0
        elif kind == "bad_side":
            base["side"] = "sideways"
        elif kind == "bad_symbol":
            base["symbol"] = "../../etc/passwd"
        else:
            return b"\x00\xffnot json"
        return _enc.encode(base)

    def _one(self) -> bytes | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        ts_event = self.ts
        self.ts += self.step_ns
        dup, _, _, bad = self.rates
        rng = self.rng
        if bad and rng.random() < bad:
            return self._malformed(ts_event)
        if dup and self.recent and rng.random() < dup:
            self.injected["duplicate"] += 1
            return self.recent[rng.randrange(len(self.recent))]
        msg = self._trade(ts_event)
        self.recent.append(msg)
        return msg

    def take(self, n: int, now_ns: int | None = None) -> list[bytes]:
        """Up to ``n`` messages (fewer at the end). ``now_ns`` (paced mode) sets the event
        time of this batch's messages to the wall clock."""
        if now_ns is not None:
            self.ts = now_ns
        out: list[bytes] = []
        pending = self.pending
        ooo = self.rates[1]
        while len(out) < n:
            if pending:
                out.append(pending.popleft())
                continue
            msg = self._one()
            if msg is None:
                break
            if ooo and self.rng.random() < ooo:
                later = self._one()
                if later is not None:  # emit the later trade first
                    self.injected["out_of_order"] += 1
                    out.append(later)
                    pending.append(msg)
                    continue
            out.append(msg)
        return out

    def missing_ids(self) -> dict[str, list[int]]:
        """Skipped trade ids that a later trade of the same symbol proves missing."""
        last = dict(zip(self.symbols, self.last_ids, strict=True))
        out = {}
        for sym, ids in self.skipped.items():
            proven = [i for i in ids if i < last[sym]]
            if proven:
                out[sym] = proven
        return out

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0 and not self.pending


class _SyntheticPartition(StatefulSourcePartition[TickBatch, tuple[SyntheticGenerator, DecoderState, int]]):
    def __init__(
        self,
        src: str,
        gen: SyntheticGenerator,
        decoder: BatchDecoder,
        offset: int,
        batch_size: int,
        pace: bool,
        clock: Callable[[], float],
    ) -> None:
        self.src = src
        self.gen = gen
        self.decoder = decoder
        self.offset = offset
        self.batch_size = batch_size
        self.pacer = Pacer(gen.step_ns, batch_size, clock=clock) if pace else None

    def next_batch(self) -> list[TickBatch]:
        if self.pacer is not None:
            n, first_due_ns = self.pacer.take()
            msgs = self.gen.take(n, now_ns=first_due_ns) if n else []
        else:
            msgs = self.gen.take(self.batch_size)
        if not msgs:
            if self.gen.exhausted:
                raise StopIteration
            return []
        ts_recv = time.time_ns()
        first = self.offset
        self.offset += len(msgs)
        batch = self.decoder.decode((first + i, raw, ts_recv, 0) for i, raw in enumerate(msgs))
        return [batch]

    def next_awake(self) -> datetime | None:
        return self.pacer.wake_at() if self.pacer is not None else None

    def snapshot(self) -> tuple[SyntheticGenerator, DecoderState, int]:
        return (copy.deepcopy(self.gen), self.decoder.state(), self.offset)


class SyntheticConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[source.synthetic]``: the generator's knobs. ``rate`` is messages per second of
    event time (and of wall time when paced); ``duration`` x ``rate`` messages in all;
    the ``*_rate`` knobs are fractions of messages injected as faults."""

    symbols: Annotated[int, between(1, 10_000_000)] = 50
    rate: Annotated[float, Meta(gt=0.0, le=1e9)] = 5000.0
    duration: PositiveDuration = PositiveDuration.parse("10s")
    partitions: Annotated[int, between(1, 4096)] = 1
    venue: str = "synthetic"
    seed: Annotated[int, between(0, INT64_MAX)] = 7
    start_ns: Annotated[int, between(0, 2**62)] = DEFAULT_START_NS
    duplicate_rate: Fraction = 0.0
    out_of_order_rate: Fraction = 0.0
    gap_rate: Fraction = 0.0
    malformed_rate: Fraction = 0.0

    @property
    def total(self) -> int:
        return int(self.rate * self.duration.seconds)


class SyntheticSource(FixedPartitionedSource[TickBatch, tuple[SyntheticGenerator, DecoderState, int]]):
    """The synthetic feed as a Bytewax source (see the module docstring); ``pace`` emits
    in real time (``stats`` then gets the backlog metrics; ``clock``, monotonic seconds,
    drives the schedule), otherwise as fast as polled."""

    def __init__(
        self,
        cfg: SyntheticConfig,
        *,
        pace: bool = False,
        batch_size: int = 2000,
        rules: ValidationRules | None = None,
        check_clock: bool = False,
        stats: RunStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.pace = pace
        self.clock = clock
        self.batch_size = batch_size
        self.rules = rules or ValidationRules()
        self.check_clock = check_clock
        self._parts: dict[str, _SyntheticPartition] = {}
        if stats is not None and pace:
            stats.collectors.append(backlog_metrics(self.pacers))

    def pacers(self) -> list[tuple[str, Pacer, int]]:
        """Paced partitions built in this process: ``(partition, pacer, messages left)``."""
        parts = list(self._parts.items())
        return [(s, p.pacer, p.gen.remaining + len(p.gen.pending)) for s, p in parts if p.pacer is not None]

    def backlog(self) -> dict[str, int]:
        """Paced mode: per partition built in this process, messages due but not read yet."""
        return {src: pacer.backlog(left) for src, pacer, left in self.pacers()}

    def list_parts(self) -> list[str]:
        return [f"synthetic/{i}" for i in range(self.cfg.partitions)]

    def build_part(
        self,
        step_id: str,
        for_part: str,
        resume_state: tuple[SyntheticGenerator, DecoderState, int] | None,
    ) -> _SyntheticPartition:
        validator = TickValidator(self.rules, check_clock=self.check_clock)
        if resume_state is not None:
            gen, dstate, offset = resume_state
            decoder = BatchDecoder.resume(for_part, generic.decode_tick, validator, dstate)
        else:
            c = self.cfg
            gen = SyntheticGenerator(
                int(for_part.rsplit("/", 1)[1]), c.partitions, c.symbols, c.rate, c.total,
                venue=c.venue, seed=c.seed, start_ns=c.start_ns, duplicate_rate=c.duplicate_rate,
                out_of_order_rate=c.out_of_order_rate, gap_rate=c.gap_rate, malformed_rate=c.malformed_rate,
            )  # fmt: skip
            decoder, offset = BatchDecoder(for_part, generic.decode_tick, validator), 0
        part = self._parts[for_part] = _SyntheticPartition(
            for_part, gen, decoder, offset, self.batch_size, self.pace, self.clock
        )
        return part
