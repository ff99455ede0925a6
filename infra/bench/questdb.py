"""Scenario ``questdb``: price updates as ILP rows into a local TCP listener.

QuestDB does not run here, so the measured path ends at a loopback socket drained by a
thread (what a server would read). ticktape: the QuestDB sink's partition
(``write_batch`` with 2,000-update batches, its own flushing every ``auto_flush_rows``,
and ``close()``). Baseline: the ``questdb`` client's ``Sender`` fed the same rows
directly by the same row function, with the client's own auto-flush at the same row
count. Both use ILP/TCP protocol version 2 (binary doubles, ns timestamps), as the sink
does for ``TIMESTAMP_NS`` tables, and stop the clock once the listener has read every byte.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings

import questdb
from questdb import Sender

from ticktape.infra.bench.common import Measurement, median
from ticktape.schemas.records import PriceUpdate
from ticktape.sinks.questdb.sink import QuestDBConfig, QuestDBSink, prices_sink, write_price

BATCH = 2000
FLUSH_ROWS = 10_000


class DrainListener:
    """127.0.0.1:<free port>; counts the bytes of each connection until it closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.bytes_per_row = 0.0
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1 << 20):
                    self.received += len(data)
            self.closed.set()

    def wait(self) -> int:
        """Bytes of the connection that just closed."""
        if not self.closed.wait(60):
            raise TimeoutError("the ILP sender did not close its connection")
        got, self.received = self.received, 0
        self.closed.clear()
        return got

    def close(self) -> None:
        self.sock.close()


def bench_updates(n: int, symbols: int = 500) -> list[PriceUpdate]:
    """``n`` updates over ``symbols`` symbols, 1 ms apart."""
    t0, out = 1_700_000_000_000_000_000, []
    for i in range(n):
        ts = t0 + i * 1_000_000
        u = PriceUpdate(
            "binance", f"S{i % symbols:04d}-USDT", 100.0 + (i % 997) * 0.01, 0.001 * (i % 50 + 1),
            "buy" if i % 3 else "sell", str(10_000_000 + i), ts, ts + 50_000, ts + 900_000, ts + 950_000,
            i // symbols + 1, "trades/0", i,
        )  # fmt: skip
        out.append(u)
    return out


def sink_run(sink: QuestDBSink[PriceUpdate], updates: list[PriceUpdate], listener: DrainListener) -> float:
    t0 = time.perf_counter()
    part = sink.build_part("bench", "0", None)
    for start in range(0, len(updates), BATCH):
        part.write_batch([updates[start : start + BATCH]])
    part.close()
    listener.bytes_per_row = listener.wait() / len(updates)
    return time.perf_counter() - t0


def client_run(conf: str, updates: list[PriceUpdate], listener: DrainListener) -> float:
    t0 = time.perf_counter()
    with Sender.from_conf(conf, protocol_version=2, auto_flush_rows=FLUSH_ROWS) as sender:
        for u in updates:
            write_price(sender, "ticktape_prices", u)
    listener.wait()
    return time.perf_counter() - t0


def questdb_scenario(rows: int = 200_000, repeats: int = 3) -> Measurement:
    """Median ILP rows/s into the listener: the sink's row path vs the bare client."""
    updates = bench_updates(rows)
    listener = DrainListener()
    conf = f"tcp::addr=127.0.0.1:{listener.port};"
    sink = prices_sink(QuestDBConfig(enabled=True, conf=conf, auto_flush_rows=FLUSH_ROWS, partitions=1))
    assert sink is not None
    try:
        with warnings.catch_warnings():  # a sender per run is the point here, not a mistake
            warnings.filterwarnings("ignore", message="questdb.Sender: Detected a burst of reconnections")
            sink_run(sink, updates, listener)  # warm-up, then alternate (the host's load drifts)
            client_run(conf, updates, listener)
            sink_samples: list[float] = []
            client_samples: list[float] = []
            for _ in range(repeats):
                sink_samples.append(rows / sink_run(sink, updates, listener))
                client_samples.append(rows / client_run(conf, updates, listener))
    finally:
        listener.close()
    extra = {
        "rows": rows, "transport": "ILP/TCP v2 into a 127.0.0.1 listener (no QuestDB)",
        "bytes_per_row": round(listener.bytes_per_row, 1), "client": questdb.__version__,
        "auto_flush_rows": FLUSH_ROWS,
    }  # fmt: skip
    return Measurement(
        scenario="questdb",
        unit="rows/s",
        value=median(sink_samples),
        baseline_name="questdb Sender.row() directly (client auto-flush)",
        baseline=median(client_samples),
        samples=sink_samples,
        baseline_samples=client_samples,
        extra=extra,
    )
