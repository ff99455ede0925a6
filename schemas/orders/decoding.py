"""From raw order messages to an :class:`OrderBatch`, per source partition.

:class:`OrderBatchDecoder` is the first step of every order source (Kafka, files, the
backtester): decode each message (:func:`~ticktape.schemas.orders.events.decode_order`),
and turn every message that cannot be used into a dead letter plus a ``DeadLettered``
event of the partition's source aggregate. Resume state: the source aggregate's event
sequence (one int), which sources snapshot with their offsets.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ticktape.schemas.decoding import dead_letter_event
from ticktape.schemas.errors import DataError
from ticktape.schemas.ids import event_id
from ticktape.schemas.orders.events import OrderEvent, decode_order
from ticktape.schemas.records import DeadLetter, Event, source_aggregate


class OrderInput(msgspec.Struct, frozen=True, gc=False):
    """A decoded order message and where it came from (``src`` + ``offset``)."""

    record: OrderEvent
    src: str
    offset: int
    raw: bytes
    ts_recv: int = 0
    ts_kafka: int = 0


class OrderBatch(msgspec.Struct, gc=False):
    """What an order source partition emits per poll. ``n_read`` counts messages read
    (decoded + undecodable), the ``read`` of the accounting."""

    src: str
    inputs: list[OrderInput]
    dead: list[DeadLetter]
    n_read: int
    events: list[Event] = msgspec.field(default_factory=list)


class OrderBatchDecoder:
    """Decode one source partition's order messages. Resume state: :meth:`state`."""

    def __init__(self, src: str, *, dl_seq: int = 0) -> None:
        self.src = src
        self.dl_seq = dl_seq
        self._aggregate = source_aggregate(src)

    def state(self) -> int:
        return self.dl_seq

    def next_seq(self) -> int:
        self.dl_seq += 1
        return self.dl_seq

    def decode(self, messages: Iterable[tuple[int, bytes, int, int]]) -> OrderBatch:
        """Decode ``(offset, raw, ts_recv, ts_kafka)`` messages in order."""
        src = self.src
        inputs: list[OrderInput] = []
        dead: list[DeadLetter] = []
        events: list[Event] = []
        n = 0
        for offset, raw, ts_recv, ts_kafka in messages:
            n += 1
            try:
                record = decode_order(raw)
            except DataError as exc:
                dl = DeadLetter(
                    event_id(ts_kafka, "ODL", src, offset), exc.code, exc.describe(), bytes(raw), src, offset,
                    ts_recv, ts_kafka=ts_kafka,
                )  # fmt: skip
                dead.append(dl)
                events.append(dead_letter_event(dl, self._aggregate, self.next_seq(), ts_kafka))
                continue
            inputs.append(OrderInput(record, src, offset, bytes(raw), ts_recv, ts_kafka))
        return OrderBatch(src, inputs, dead, n, events)
