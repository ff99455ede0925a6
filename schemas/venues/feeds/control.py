"""Frames ticktape itself puts into a venue feed's frame stream.

The feed handler (``ticktape.connectors.venues``) writes these beside the venue's own
frames, so that the stream of frames alone says everything the job needs: ``ticktape
record`` stores them in Kafka with the venue frames, and a replay rebuilds the same
books and the same facts. Each is one JSON object whose first key is ``ticktape`` (the
kind)::

    {"ticktape":"connected","venue":"binance","conn":"binance/0","session":3,"url":"wss://...","ts":...}
    {"ticktape":"disconnected","venue":"binance","conn":"binance/0","session":3,"reason":"...","frames":812,"ts":...}
    {"ticktape":"snapshot","venue":"binance","symbol":"BTCUSDT","ts":...,"data":{...REST body...}}
    {"ticktape":"gap","venue":"coinbase","conn":"coinbase/0","session":1,"first":41,"last":44,"ts":...}
    {"ticktape":"venue_error","venue":"bybit","conn":"bybit/0","reason":"...","ts":...}
    {"ticktape":"oversized","venue":"binance","conn":"binance/0","frames":<size>,"reason":"<head>","ts":...}

An ``oversized`` frame stands for a venue frame larger than ``max_frame_bytes``: its first
KiB is in ``reason`` and it becomes an ``OVERSIZED_FRAME`` dead letter (a record read).

``ts`` is the wall time (ns) the handler wrote the frame; it is the event time of what the
frame becomes, so replays give the same events.
"""

from __future__ import annotations

from typing import Final

import msgspec

PREFIX: Final = b'{"ticktape":'
CONNECTED: Final = "connected"
DISCONNECTED: Final = "disconnected"
SNAPSHOT: Final = "snapshot"
GAP: Final = "gap"
VENUE_ERROR: Final = "venue_error"
OVERSIZED: Final = "oversized"
KINDS: Final = (CONNECTED, DISCONNECTED, SNAPSHOT, GAP, VENUE_ERROR, OVERSIZED)
#: ``reason`` of a ``connected`` frame whose session took over from a live one (a planned
#: reconnect with overlap: nothing was missed).
PLANNED: Final = "planned"


class Control(msgspec.Struct, frozen=True, omit_defaults=True):
    """One control frame (see the module docstring); ``data`` is the venue's own JSON
    (a REST snapshot body) for ``snapshot``."""

    ticktape: str
    venue: str = ""
    conn: str = ""
    session: int = 0
    symbol: str = ""
    url: str = ""
    reason: str = ""
    frames: int = 0
    first: int = 0
    last: int = 0
    ts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Control)


def is_control(raw: bytes) -> bool:
    """Whether ``raw`` is a ticktape control frame (by its first key)."""
    return raw[:12] == PREFIX


def encode_control(control: Control) -> bytes:
    """The frame bytes of ``control``."""
    return _enc.encode(control)


def decode_control(raw: bytes) -> Control:
    """Decode a control frame (raises ``msgspec.DecodeError``)."""
    return _dec.decode(raw)
