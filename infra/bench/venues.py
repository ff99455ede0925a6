"""Scenario ``venues``: frames/s of one venue connection, beside a bare ``websockets``
receive loop reading the same simulator in the same run (the ceiling: no classification,
no stamping, no queue, no decoding).

The simulator (``ticktape venue-sim`` in ``replay`` mode, in its own process so that it
does not share this process's interpreter lock) sends every connection the whole tape of
a synthetic Binance market (trades, aggTrades, bookTickers, depth diffs) as fast as it
reads. Measured per repetition:

* ``value``: the ``websocket`` source's work for one connection: the connection
  (receive, classify, stamp, queue) and the partition's decoding (trades, quotes, local
  books, resync requests), frames/s;
* ``extra["connection_only_per_s"]``: the connection alone (frames drained, not decoded);
* ``extra["picows_bare_per_s"]``: a bare ``picows`` receive loop (the other library the
  issue names), when it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import msgspec

from ticktape.connectors.venues.config import VenueFeedConfig
from ticktape.connectors.venues.protocols import protocol_for
from ticktape.connectors.venues.runner import FeedRunner
from ticktape.connectors.venuesim.runner import build_venue
from ticktape.connectors.venuesim.tape import Tape
from ticktape.infra.bench.common import Measurement, median, repeat
from ticktape.schemas.durations import dec_hook
from ticktape.schemas.feed import FeedBatchDecoder, make_batch_decoder
from ticktape.schemas.validation import ValidationRules
from ticktape.schemas.venues.feeds.control import is_control

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class _Sim:
    def __init__(self, url: str, rest_url: str) -> None:
        self.url = url
        self.rest_url = rest_url


@contextlib.contextmanager
def _sim_process(events: int, seed: int = 7) -> Iterator[_Sim]:
    """``ticktape venue-sim --mode replay`` in a child process; its URLs."""
    cmd = [sys.executable, "-m", "ticktape.flows.cli", "venue-sim", "--venue", "binance", "--mode", "replay",
           "--events", str(events), "--rate", "0", "--seed", str(seed), "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            m = re.search(r"WebSocket (ws://\S+)\s+REST (http://\S+)", line)
            if m:
                yield _Sim(m.group(1), m.group(2))
                return
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"venue-sim did not start (exit {proc.poll()})")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _feed(sim: _Sim) -> VenueFeedConfig:
    entry = {"venue": "binance", "symbols": list(SYMBOLS), "channels": ["trades", "agg_trades", "quotes", "book"],
             "url": sim.url, "rest_url": sim.rest_url, "queue_frames": 50_000}  # fmt: skip
    return msgspec.convert(entry, VenueFeedConfig, dec_hook=dec_hook)


async def _bare_websockets(url: str, total: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=1 << 24, compression=None, proxy=None) as ws:
        await ws.recv(decode=False)
        t0 = time.perf_counter()  # from the first frame, as the other loops
        for _ in range(total - 1):
            await ws.recv(decode=False)
        return (total - 1) / (time.perf_counter() - t0)


async def _bare_picows(url: str, total: int) -> float:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    class Listener(WSListener):
        def __init__(self) -> None:
            self.n = 0
            self.t0 = 0.0

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                if self.n == 0:
                    self.t0 = time.perf_counter()
                self.n += 1
                frame.get_payload_as_bytes()  # what a consumer would need
                if self.n == total and not done.done():
                    done.set_result((total - 1) / (time.perf_counter() - self.t0))

    transport, _ = await ws_connect(Listener, url)
    try:
        return await asyncio.wait_for(done, 300)
    finally:
        transport.disconnect()


def _ticktape(sim: _Sim, total: int, *, decode: bool) -> float:
    feed = _feed(sim)
    protocol = protocol_for(feed)
    runner = FeedRunner("ws:binance/0", protocol, protocol.connections()[0]).start()
    decoder = make_batch_decoder("binance-ws", "ws:binance/0", ValidationRules(), check_clock=False)
    assert isinstance(decoder, FeedBatchDecoder)
    seen = offset = 0
    t0 = 0.0
    deadline = time.monotonic() + 300
    try:
        while seen < total - 1 and time.monotonic() < deadline:
            frames = runner.drain(5000)
            if not frames:
                time.sleep(0.0005)
                continue
            data = sum(1 for f in frames if not is_control(f.raw))
            if seen == 0 and data:
                t0 = time.perf_counter()  # from the first frame (those already drained not counted)
                data -= 1
            seen += data
            if decode:
                decoder.decode([(offset + i, f.raw, f.ts_recv, 0) for i, f in enumerate(frames)])
                offset += len(frames)
                for _venue, symbol, reason in decoder.keeper.take_resyncs():
                    runner.request_resync(symbol, reason)
        return seen / (time.perf_counter() - t0)
    finally:
        runner.stop()


def _picows_available() -> bool:
    try:
        import picows  # noqa: F401
    except ImportError:
        return False
    return True


def venues_scenario(events: int = 100_000, repeats: int = 3) -> Measurement:
    """See the module docstring; ``events`` synthetic market events (more frames: trades
    come as ``trade`` and ``aggTrade``, top-of-book changes add ``bookTicker``)."""
    tape: Tape = build_venue("binance", events=events, seed=7).tape  # the child builds the same tape
    total = len(tape.items)
    with _sim_process(events) as sim:
        streams = "/".join(
            f"{s.lower()}@{k}" for s in SYMBOLS for k in ("trade", "aggTrade", "bookTicker", "depth@100ms")
        )
        url = f"{sim.url}/stream?streams={streams}"
        bare = repeat(lambda: asyncio.run(_bare_websockets(url, total)), repeats)
        source = repeat(lambda: _ticktape(sim, total, decode=True), repeats)
        connection = repeat(lambda: _ticktape(sim, total, decode=False), repeats)
        extra: dict[str, Any] = {
            "frames": total,
            "connection_only_per_s": median(connection),
            "connection_only_samples": connection,
        }
        if _picows_available():
            picows = repeat(lambda: asyncio.run(_bare_picows(url, total)), repeats)
            extra |= {"picows_bare_per_s": median(picows), "picows_samples": picows}
        else:
            extra["picows_bare_per_s"] = None
    return Measurement(
        "venues", "frames/s", median(source), "bare websockets recv loop", median(bare), source, bare, extra
    )
