"""What every simulated venue does; one subclass per venue protocol.

A :class:`SimVenue` keeps the reference books (the tape's initial books plus every book
change sent so far: exactly what a client that missed nothing would hold) and speaks the
venue's protocol on each :class:`SimConn`: which streams a connection subscribed to, the
replies, the in-band snapshots, the heartbeats and, for REST venues, the snapshot
endpoint.
"""

from __future__ import annotations

from ticktape.connectors.venuesim.tape import BookOp, Frame, Item, Tape, fmt
from ticktape.schemas.books.book import L2Book


class SimConn:
    """One client connection's protocol state."""

    def __init__(self, n: int, path: str) -> None:
        self.n = n
        self.path = path
        self.subs: set[tuple[str, str]] = set()
        self.seq = 0  # Coinbase: sequence_num of the next message
        self.depth: dict[str, int] = {}  # per symbol book depth asked for
        self.partial: dict[str, str] = {}  # Binance partial depth: symbol -> stream name

    def next_seq(self) -> int:
        n = self.seq
        self.seq += 1
        return n


class SimVenue:
    venue = ""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self.books: dict[str, L2Book] = {}
        for symbol, (bids, asks, last_id) in tape.books.items():
            book = self.books[symbol] = L2Book(10_000, keep_text=True)
            book.load(bids, asks, last_id, self._texts(bids, asks))

    def _texts(
        self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        pd, sd = self.tape.price_decimals, self.tape.size_decimals
        return ([(fmt(p, pd), fmt(q, sd)) for p, q in bids], [(fmt(p, pd), fmt(q, sd)) for p, q in asks])

    def apply(self, op: BookOp) -> None:
        """A book change was sent: the reference book follows."""
        book = self.books.get(op.symbol)
        if book is None:
            book = self.books[op.symbol] = L2Book(10_000, keep_text=True)
        if op.last_id >= 0 and 0 <= op.last_id <= book.last_id:
            return  # already in the book (a recorded diff older than the recorded snapshot)
        book.apply(
            op.bids, op.asks, op.last_id if op.last_id >= 0 else book.last_id, self._texts(op.bids, op.asks)
        )

    # --- protocol hooks ---------------------------------------------------------------
    def accept(self, conn: SimConn) -> bool:
        """Whether the request path is one this venue serves (and initial subscriptions)."""
        return True

    def on_message(self, conn: SimConn, text: bytes) -> list[bytes]:
        """A client message: the frames to send back (replies, snapshots)."""
        return []

    def wants(self, conn: SimConn, item: Item) -> bool:
        return item.key in conn.subs

    def resends(self, item: Item) -> bool:
        """Whether the ``duplicate`` fault may send ``item`` again (a venue without
        message ids could not be defended against, and does not do it)."""
        return True

    def render(self, conn: SimConn, item: Item) -> list[bytes]:
        """The bytes ``conn`` gets for ``item`` (numbering, derived frames)."""
        return [_bytes(conn, item.frame)]

    def heartbeat(self, conn: SimConn) -> bytes | None:
        return None

    def http(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        return 404, b'{"error":"not found"}'


def _bytes(conn: SimConn, frame: Frame) -> bytes:
    if isinstance(frame, bytes):
        return frame
    head, tail = frame
    return head + str(conn.next_seq()).encode() + tail
