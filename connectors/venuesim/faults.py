"""Faults the simulator injects, one connection at a time.

Text form (``ticktape venue-sim --fault ...``, repeatable): ``KIND[:ARG][@AT][#CONN]`` where
``AT`` is the data frame (1-based, counted per connection) at which it fires and ``CONN``
the client connection it hits (1: the first to connect, the default; 0: every one).

================  =============================================================================
kind              what the client sees
================  =============================================================================
``disconnect``    the TCP connection is cut (no close frame) before frame ``AT``
``close:CODE``    a close frame with ``CODE`` (e.g. 1011, 1008) before frame ``AT``
``stall:SECS``    nothing at all (no data, no heartbeats) for ``SECS`` seconds from frame ``AT``
``malformed``     a truncated, undecodable frame before frame ``AT``
``oversized:N``   a frame of ``N`` bytes before frame ``AT``
``skip``          frame ``AT`` is never sent (a sequence hole)
``duplicate:K``   on connect, the last ``K`` frames the venue sent (to anyone) are sent again
``slow:Q``        from frame ``AT`` the client stops keeping up: the venue queues ``Q`` frames, then drops it (1008)
``rest_error:S``  REST request number ``AT`` is answered with HTTP status ``S``
================  =============================================================================
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from ticktape.schemas.errors import ConfigError

Kind = Literal[
    "disconnect", "close", "stall", "malformed", "oversized", "skip", "duplicate", "slow", "rest_error"
]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]
_DEFAULT_ARG = {"close": 1011.0, "stall": 5.0, "oversized": 2_000_000.0, "duplicate": 20.0, "slow": 100.0,
                "rest_error": 429.0}  # fmt: skip
_TEXT = re.compile(r"^(?P<kind>[a-z_]+)(?::(?P<arg>[0-9.]+)s?)?(?:@(?P<at>\d+))?(?:#(?P<conn>\d+))?$")


class Fault(msgspec.Struct, frozen=True):
    kind: Kind
    at: int = 1
    conn: int = 1
    arg: float = 0.0

    def hits(self, conn: int) -> bool:
        return self.conn in (0, conn)


def parse_fault(text: str) -> Fault:
    """``"close:1011@200#1"`` -> ``Fault("close", 200, 1, 1011.0)``."""
    m = _TEXT.match(text.strip())
    if m is None or m.group("kind") not in KINDS:
        raise ConfigError(
            f"fault {text!r}: expected KIND[:ARG][@AT][#CONN] with KIND one of {', '.join(KINDS)}"
        )
    kind = m.group("kind")
    arg = float(m.group("arg")) if m.group("arg") else _DEFAULT_ARG.get(kind, 0.0)
    return Fault(kind, int(m.group("at") or 1), int(m.group("conn") or 1), arg)  # type: ignore[arg-type]
