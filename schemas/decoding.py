"""From raw messages to a :class:`~ticktape.schemas.records.TickBatch`, per source partition.

:class:`BatchDecoder` is the first step of every source: decode (venue wire format),
apply the stateless validation rules, stamp each tick with the partition watermark, and
turn every failure into a dead-letter record plus a ``DeadLettered`` event. It keeps
two numbers of state per partition (the watermark and the dead-letter event sequence),
which sources snapshot with their offsets.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ticktape.schemas.errors import DataError, DecodeError, InputError, RejectError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import (
    DeadLetter,
    DLCode,
    Event,
    EventType,
    Tick,
    TickBatch,
    bounded_raw,
    source_aggregate,
)
from ticktape.schemas.validation import TickValidator
from ticktape.schemas.venues import Decoder, binance, bybit, coinbase, generic, kraken

FORMATS: dict[str, Decoder] = {
    "binance": binance.decode_any,
    "binance-trade": binance.decode_trade,
    "binance-agg": binance.decode_agg_trade,
    "coinbase": coinbase.decode_market_trades,
    "kraken": kraken.decode_trade,
    "bybit": bybit.decode_public_trade,
    "generic": generic.decode_tick,
}


def decoder_for(fmt: str) -> Decoder:
    """The wire-format decoder named ``fmt`` (see :data:`FORMATS`)."""
    try:
        return FORMATS[fmt]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"unknown message format {fmt!r}; known formats: {known}") from None


_dl_encoder = msgspec.json.Encoder()


def dead_letter_event(dl: DeadLetter, aggregate: str, seq: int, ts_event: int) -> Event:
    """The event-log record of a dead letter (its id is the dead letter's id; ``ts_event``
    must be deterministic: the tick's event time, the broker timestamp, or 0)."""
    return Event(
        event_id=dl.dl_id,
        type=EventType.DEAD_LETTER,
        aggregate=aggregate,
        seq=seq,
        ts_event=ts_event,
        ts_logged=0,
        payload=_dl_encoder.encode(dl),
        causation=f"{dl.src}@{dl.offset}",
    )


#: Ticks in a row, each beyond ``max_ts_jump`` of the watermark and within it of the one
#: before, that confirm a real move of event time (a long halt in the file, say): the
#: first ones are dead letters (``TS_JUMP``), this one moves the watermark.
JUMP_CONFIRM = 3

DecoderState = tuple[int, ...]
"""``(wmark, dl_seq)``, or ``(wmark, dl_seq, jump_run, jump_last)`` while ticks beyond
``max_ts_jump`` are being counted."""


class BatchDecoder:
    """Decode one source partition's messages into tick batches.

    Watermark guard: on sources without a receive clock (``check_clock=False``: files,
    backfills, history replays) a tick more than ``max_ts_jump`` ahead of the partition's
    watermark is an outlier (dead letter ``TS_JUMP``) and does not move the watermark, so
    one future-dated row cannot make every later row late. :data:`JUMP_CONFIRM`
    consecutive such ticks that agree with each other are taken as a real move. A tick
    more than ``max_ts_jump`` ahead of the receive clock (history is never in the future)
    is a ``TS_JUMP`` too, which also guards a partition's first tick. Live
    sources bound event time by the receive clock instead (``TS_FUTURE``).

    Every failure, including an unexpected exception of a decoder, becomes a dead letter.

    Resume state: :data:`DecoderState` via :meth:`state` / :meth:`resume`.
    """

    def __init__(
        self,
        src: str,
        decoder: Decoder,
        validator: TickValidator,
        *,
        wmark: int = 0,
        dl_seq: int = 0,
        jump_run: int = 0,
        jump_last: int = 0,
    ) -> None:
        self.src = src
        self.decoder = decoder
        self.validator = validator
        self.wmark = wmark
        self.dl_seq = dl_seq
        self.jump_run = jump_run
        self.jump_last = jump_last
        self.max_jump = 0 if validator.check_clock else int(validator.rules.max_ts_jump)
        self._aggregate = source_aggregate(src)
        self._unclocked: TickValidator | None = None

    def validator_for(self, clocked: bool) -> TickValidator:
        """The validator of messages with a receive clock (``clocked``), else the same rules
        without the clock rule (history replayed through Kafka has no receive clock)."""
        if clocked or not self.validator.check_clock:
            return self.validator
        if self._unclocked is None:
            self._unclocked = TickValidator(self.validator.rules, check_clock=False)
        return self._unclocked

    @classmethod
    def resume(
        cls, src: str, decoder: Decoder, validator: TickValidator, state: DecoderState | None
    ) -> BatchDecoder:
        """A decoder continuing from :meth:`state` (``None``: from the start)."""
        wmark, dl_seq, jump_run, jump_last = (*(state or ()), 0, 0, 0, 0)[:4]
        return cls(
            src, decoder, validator, wmark=wmark, dl_seq=dl_seq, jump_run=jump_run, jump_last=jump_last
        )

    def state(self) -> DecoderState:
        if self.jump_run:
            return (self.wmark, self.dl_seq, self.jump_run, self.jump_last)
        return (self.wmark, self.dl_seq)

    def next_seq(self) -> int:
        """The next ``seq`` of this partition's source aggregate. Dead letters and other
        source events (e.g. a Kafka offset gap) share it, so seq stays unique."""
        self.dl_seq += 1
        return self.dl_seq

    def decode(self, messages: Iterable[tuple[int, bytes, int, int]], *, clocked: bool = True) -> TickBatch:
        """Decode ``(offset, raw, ts_recv, ts_kafka)`` messages in order (``clocked``: see
        :meth:`validator_for`)."""
        src, decode, check = self.src, self.decoder, self.validator_for(clocked).check
        ticks: list[Tick] = []
        dead: list[DeadLetter] = []
        wmark, max_jump, run, last = self.wmark, self.max_jump, self.jump_run, self.jump_last
        n_read = 0
        for offset, raw, ts_recv, ts_kafka in messages:
            try:
                decoded = decode(raw, src, offset, ts_recv, ts_kafka)
            except Exception as exc:  # a decoder bug must not stop the job either: a dead letter
                n_read += 1
                dead.append(self._dead(data_error(exc), raw, offset, ts_recv, ts_kafka, 0, 1, None))
                continue
            count = len(decoded)
            n_read += count
            for index, tick in enumerate(decoded):
                try:
                    check(tick)
                except Exception as exc:
                    dead.append(
                        self._dead(data_error(exc), raw, offset, ts_recv, ts_kafka, index, count, tick)
                    )
                    continue
                ts = tick.ts_event
                if ts > wmark:
                    if max_jump and ts_recv and ts - ts_recv > max_jump:  # beyond the clock: never real
                        jump = _jump_error(ts, ts_recv, max_jump, "the receive clock")
                        dead.append(self._dead(jump, raw, offset, ts_recv, ts_kafka, index, count, tick))
                        continue
                    if max_jump and wmark and ts - wmark > max_jump:
                        run = run + 1 if run and abs(ts - last) <= max_jump else 1
                        last = ts
                        if run < JUMP_CONFIRM:
                            jump = _jump_error(ts, wmark, max_jump)
                            dead.append(self._dead(jump, raw, offset, ts_recv, ts_kafka, index, count, tick))
                            continue
                    wmark = ts
                run = 0
                tick.wmark = wmark
                ticks.append(tick)
        self.wmark, self.jump_run, self.jump_last = wmark, run, last
        events = []
        for dl in dead:
            events.append(dead_letter_event(dl, self._aggregate, self.next_seq(), dl.ts_kafka))
        return TickBatch(src=src, ticks=ticks, dead=dead, n_read=n_read, wmark=wmark, events=events)

    def _dead(
        self,
        exc: DataError,
        raw: bytes,
        offset: int,
        ts_recv: int,
        ts_kafka: int,
        index: int,
        count: int,
        tick: Tick | None,
    ) -> DeadLetter:
        where = f" (trade {index + 1} of {count})" if count > 1 else ""
        kept, size, sha = bounded_raw(raw)
        return DeadLetter(
            dl_id=event_id(ts_kafka, "DL", self.src, offset, index),
            code=exc.code,
            message=exc.describe() + where,
            raw=kept,
            src=self.src,
            offset=offset,
            ts_recv=ts_recv,
            venue=tick.venue if tick else "",
            symbol=tick.symbol if tick else "",
            ts_kafka=ts_kafka,
            raw_size=size,
            raw_sha256=sha,
        )


def _jump_error(ts: int, ref: int, max_jump: int, what: str = "the partition's watermark") -> RejectError:
    return RejectError(
        DLCode.TS_JUMP,
        "ts_event",
        f"at most {max_jump / 1e9:g}s ahead of {what} {ref}",
        f"{ts} ({(ts - ref) / 1e9:.3f}s ahead)",
    )


def data_error(exc: Exception) -> DataError:
    """``exc`` if it is a :class:`DataError`, else an unexpected error as a decode error."""
    return exc if isinstance(exc, DataError) else _unexpected(exc)


def _unexpected(exc: Exception) -> DecodeError:
    return DecodeError(
        DLCode.DECODE_ERROR, "$", "a message the decoder can read", f"{type(exc).__name__}: {exc}"
    )
