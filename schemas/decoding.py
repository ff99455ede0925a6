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

from ticktape.schemas.errors import DataError, InputError
from ticktape.schemas.ids import event_id
from ticktape.schemas.records import DeadLetter, Event, EventType, Tick, TickBatch, source_aggregate
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


class BatchDecoder:
    """Decode one source partition's messages into tick batches.

    Resume state: ``(wmark, dl_seq)`` via :meth:`state` / the constructor.
    """

    def __init__(
        self,
        src: str,
        decoder: Decoder,
        validator: TickValidator,
        *,
        wmark: int = 0,
        dl_seq: int = 0,
    ) -> None:
        self.src = src
        self.decoder = decoder
        self.validator = validator
        self.wmark = wmark
        self.dl_seq = dl_seq
        self._aggregate = source_aggregate(src)

    def state(self) -> tuple[int, int]:
        return (self.wmark, self.dl_seq)

    def next_seq(self) -> int:
        """The next ``seq`` of this partition's source aggregate. Dead letters and other
        source events (e.g. a Kafka offset gap) share it, so seq stays unique."""
        self.dl_seq += 1
        return self.dl_seq

    def decode(self, messages: Iterable[tuple[int, bytes, int, int]]) -> TickBatch:
        """Decode ``(offset, raw, ts_recv, ts_kafka)`` messages in order."""
        src, decode, check = self.src, self.decoder, self.validator.check
        ticks: list[Tick] = []
        dead: list[DeadLetter] = []
        wmark = self.wmark
        n_read = 0
        for offset, raw, ts_recv, ts_kafka in messages:
            try:
                decoded = decode(raw, src, offset, ts_recv, ts_kafka)
            except DataError as exc:
                n_read += 1
                dead.append(self._dead(exc, raw, offset, ts_recv, ts_kafka, 0, 1, None))
                continue
            n_read += len(decoded)
            for index, tick in enumerate(decoded):
                try:
                    check(tick)
                except DataError as exc:
                    dead.append(self._dead(exc, raw, offset, ts_recv, ts_kafka, index, len(decoded), tick))
                    continue
                if tick.ts_event > wmark:
                    wmark = tick.ts_event
                tick.wmark = wmark
                ticks.append(tick)
        self.wmark = wmark
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
        return DeadLetter(
            dl_id=event_id(ts_kafka, "DL", self.src, offset, index),
            code=exc.code,
            message=exc.describe() + where,
            raw=bytes(raw),
            src=self.src,
            offset=offset,
            ts_recv=ts_recv,
            venue=tick.venue if tick else "",
            symbol=tick.symbol if tick else "",
            ts_kafka=ts_kafka,
        )
