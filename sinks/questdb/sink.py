"""QuestDB outputs: price updates, candles and quotes as ILP rows through the ``questdb`` client.

:class:`QuestDBSink` - unit of parallelism: the sink partitions (``partitions`` per
table; items ``(str(key), [records])`` go to partition ``int(key) % partitions``), each
owning one client ``Sender`` made from the conf string (:mod:`ticktape.sinks.questdb.config`; ILP
over HTTP by default, TCP optional) and one client ``Buffer`` of its rows. Rows go
through the buffer's ``row()``, which escapes table, symbol and string values. A
partition flushes when ``auto_flush_rows`` rows are buffered or ``auto_flush_interval``
passed since its last flush (checked as rows arrive), and always in ``snapshot()`` and
``close()``; the client's own auto-flush is off so that every buffered line maps to a
known record.

Delivery: at-least-once over HTTP - a flush returns once QuestDB accepted the request.
Transient failures are retried for ``retry_timeout``: HTTP 5xx answers by the client, a
server that does not answer at all (connection refused or reset: restarting, down) by the
sink, which keeps its buffer and sends it again with a backoff (100 ms doubling to 1 s).
A flush that still fails raises :class:`~ticktape.schemas.errors.SinkError` so Bytewax
does not commit the epoch and the job resumes from the previous snapshot. With the tables' ``DEDUP UPSERT KEYS``
(:mod:`ticktape.sinks.questdb.ddl`) replays land on the same rows: effectively once. Over TCP
the server reports nothing: a refused row drops the connection, so rows flushed just
before can be lost; use HTTP for the guarantee. Resume state: none.

Errors: a record the client refuses to encode (e.g. a string that is not valid UTF-8,
an integer out of range) is skipped, logged with the record and counted in
``ticktape_sink_errors{sink}``; the rest of the batch is written. A flush QuestDB refuses
names the table, the server's message and the offending record (the server reports its
line; lines map one to one to buffered records).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from bytewax.outputs import StatefulSinkPartition

from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.durations import format_duration
from ticktape.schemas.errors import ConfigError, MissingDependencyError, SinkError
from ticktape.schemas.records import Candle, PriceUpdate, Quote
from ticktape.sinks.base.partitioned import PartitionedSink
from ticktape.sinks.questdb.config import QuestDBConfig, ResolvedConf, resolve_conf, sender_options
from ticktape.sinks.questdb.ddl import ddl, default_http_addr, init_tables

try:
    from questdb import QuestDBError, QuestDBErrorCode, Sender, TimestampNanos

    HAVE_QUESTDB = True
except ImportError:  # pragma: no cover - the optional dependency is installed in dev
    HAVE_QUESTDB = False

__all__ = [
    "QuestDBConfig", "QuestDBSink", "candles_sink", "ddl", "default_http_addr", "init_tables",
    "prices_sink", "quotes_sink", "write_candle", "write_price", "write_quote",
]  # fmt: skip

R = TypeVar("R")
#: ``write_row(target, table, record)``; ``target`` is a client ``Buffer`` or ``Sender``
#: (both have the same ``row()``).
RowWriter = Callable[[Any, str, R], None]
log = logging.getLogger("ticktape.sinks.questdb")
_LINE = re.compile(r"\bline: (\d+)\]|error in line (\d+)")
_LOG_FIRST, _LOG_EVERY = 10, 1000  # per partition: log the first rejected rows, then 1 in 1000
#: Set when a flush of the current run failed (cleared when a sink is made for a new flow).
_FLUSH_FAILED = threading.Event()


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} chars)"


def write_price(sender: Any, table: str, u: PriceUpdate) -> None:
    """One price row into a client ``Buffer`` or ``Sender``; ``tick_id`` is the tick's
    identity (a dedup key, see DDL)."""
    sender.row(
        table,
        symbols={"venue": u.venue, "symbol": u.symbol, "side": u.side},
        columns={
            "price": float(u.price), "size": float(u.size), "trade_id": u.trade_id,
            "tick_id": u.trade_id or f"{u.src}@{u.offset}", "seq": u.seq,
            "ts_kafka": TimestampNanos(u.ts_kafka) if u.ts_kafka > 0 else None,
            "ts_recv": TimestampNanos(u.ts_recv), "ts_proc": TimestampNanos(u.ts_proc),
            "src": u.src, "offset": u.offset,
        },
        at=TimestampNanos(u.ts_event),
    )  # fmt: skip


def write_candle(sender: Any, table: str, c: Candle) -> None:
    """One candle row at its start time (into a ``Buffer`` or ``Sender``); ``interval`` in seconds."""
    sender.row(
        table,
        symbols={"venue": c.venue, "symbol": c.symbol},
        columns={
            "interval": c.interval, "open": float(c.open), "high": float(c.high), "low": float(c.low),
            "close": float(c.close), "volume": float(c.volume), "notional": float(c.notional),
            "vwap": float(c.vwap), "trades": c.trades, "buy_volume": float(c.buy_volume),
            "sell_volume": float(c.sell_volume), "first_trade_id": c.first_trade_id,
            "last_trade_id": c.last_trade_id, "revision": c.revision,
            "ts_final": TimestampNanos(c.ts_final),
        },
        at=TimestampNanos(c.start),
    )  # fmt: skip


def write_quote(sender: Sender, table: str, q: Quote) -> None:
    """One top-of-book row at its event time, with mid and spread."""
    sender.row(
        table,
        symbols={"venue": q.venue, "symbol": q.symbol},
        columns={
            "bid": float(q.bid), "bid_size": float(q.bid_size), "ask": float(q.ask), "ask_size": float(q.ask_size),
            "mid": (q.bid + q.ask) / 2.0, "spread": q.ask - q.bid, "seq": q.seq, "update_id": q.update_id,
            "ts_recv": TimestampNanos(q.ts_recv), "src": q.src, "offset": q.offset,
        },
        at=TimestampNanos(q.ts_event),
    )  # fmt: skip


def _row_error(exc: Exception) -> bool:
    """Whether ``row()`` refused the record itself (not the sender's state)."""
    if isinstance(exc, QuestDBError):
        return exc.code in (QuestDBErrorCode.InvalidUtf8, QuestDBErrorCode.InvalidTimestamp)
    return isinstance(exc, ValueError | OverflowError | TypeError)


class _QuestDBPart(StatefulSinkPartition[list[R], None], Generic[R]):
    def __init__(self, sink: QuestDBSink[R], sender: Sender) -> None:
        self.sink = sink
        self.sender = sender
        self.buffer = sender.new_buffer()  # ours: a failed flush leaves it intact, to retry
        self.max_rows = sink.cfg.auto_flush_rows
        self.max_age_s = sink.cfg.auto_flush_interval.seconds
        self.pending: list[R] = []  # records in the buffer, in line order
        self.clock = sink.clock
        self.since = self.clock()
        self.rejected = 0
        self.flush_s = 0.0  # flush time within the current write_batch

    def write_batch(self, values: list[list[R]]) -> None:
        t0, self.flush_s = time.perf_counter(), 0.0
        write, buffer, table, pending = self.sink.write_row, self.buffer, self.sink.table, self.pending
        for batch in values:
            for record in batch:
                try:
                    write(buffer, table, record)
                except Exception as exc:
                    if not _row_error(exc):
                        raise SinkError(
                            f"QuestDB table {table!r}: cannot buffer a row: {_clip(str(exc))}"
                        ) from exc
                    self._reject(record, exc)
                    continue
                pending.append(record)
                if len(pending) >= self.max_rows:
                    self._flush()
                    pending = self.pending
        if self.pending and self.clock() - self.since >= self.max_age_s:
            self._flush()
        if self.sink.stats is not None:  # building rows; flushes count their own time
            self.sink.stats.count_sink(self.sink.name, 0, time.perf_counter() - t0 - self.flush_s)

    def _reject(self, record: R, exc: Exception) -> None:
        self.rejected += 1
        if self.sink.stats is not None:
            self.sink.stats.count_sink(self.sink.name, 0, 0.0, failed=True)
        if self.rejected <= _LOG_FIRST or self.rejected % _LOG_EVERY == 0:
            log.warning(
                "QuestDB table %s: row not written (%s: %s), %d so far in this partition: %s",
                self.sink.table, type(exc).__name__, _clip(str(exc), 200), self.rejected, _clip(repr(record)),
            )  # fmt: skip

    def _flush(self, *, retry: bool = True) -> None:
        rows, self.pending = self.pending, []
        self.since = self.clock()
        if not rows:
            return
        t0 = time.perf_counter()
        deadline, backoff = time.monotonic() + (self.sink.retry_s if retry else 0.0), 0.1
        while True:
            try:
                self.sender.flush(self.buffer, clear=False)
                break
            except QuestDBError as exc:
                if (
                    self.sink.conf.is_http
                    and exc.code == QuestDBErrorCode.SocketError
                    and time.monotonic() < deadline
                ):
                    if backoff == 0.1:  # the first retry of this flush
                        log.warning("QuestDB table %s: %s; retrying the flush of %d rows for up to %s", self.sink.table, self.sink.conf.scrub(str(exc)), len(rows), format_duration(int(self.sink.retry_s * 1e9)))  # fmt: skip
                    time.sleep(min(backoff, max(deadline - time.monotonic(), 0.0)))
                    backoff = min(backoff * 2, 1.0)
                    continue
                self.buffer.clear()  # type: ignore[no-untyped-call]  # the epoch fails; the resumed run writes these rows again
                if self.sink.stats is not None:
                    self.sink.stats.count_sink(self.sink.name, 0, time.perf_counter() - t0, failed=True)
                _FLUSH_FAILED.set()
                raise SinkError(self.sink.describe_failure(exc, rows)) from None
        self.buffer.clear()  # type: ignore[no-untyped-call]
        elapsed = time.perf_counter() - t0
        self.flush_s += elapsed
        if self.sink.stats is not None:
            self.sink.stats.count_sink(self.sink.name, len(rows), elapsed)

    def snapshot(self) -> None:
        self._flush()

    def close(self) -> None:
        """Flush and close. After a flush of this run failed (the flow is stopping and will
        resume from its last snapshot) close tries one flush without retries and drops the
        rows if that fails too, never raising: Bytewax closes partitions while it unwinds,
        and an error there aborts the process."""
        try:
            if _FLUSH_FAILED.is_set():
                try:
                    self._flush(retry=False)
                except SinkError as exc:
                    log.warning("QuestDB table %s: rows dropped at close after a failed flush (the resumed run writes them again): %s", self.sink.table, exc)  # fmt: skip
            else:
                self._flush()
        finally:
            self.sender.close(flush=False)


class QuestDBSink(PartitionedSink[list[R], None], Generic[R]):
    """Records of type ``R`` into ``table``, one row each by ``write_row(sender, table,
    record)``; ``name`` labels the metrics (``stats.count_sink``). ``clock`` (monotonic
    seconds) times ``auto_flush_interval``, read once per ``write_batch`` and per flush;
    tests pass a fake one instead of sleeping past the interval."""

    def __init__(
        self,
        cfg: QuestDBConfig,
        table: str,
        write_row: RowWriter[R],
        *,
        name: str,
        stats: RunStats | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not HAVE_QUESTDB:  # pragma: no cover
            raise MissingDependencyError("questdb", "questdb")
        super().__init__(cfg.partitions)
        _FLUSH_FAILED.clear()
        self.cfg = cfg
        self.table = table
        self.write_row = write_row
        self.name = name
        self.stats = stats
        self.clock = clock
        self.conf: ResolvedConf = resolve_conf(cfg, env)
        self.options = sender_options(cfg, self.conf)
        #: How long a flush is retried (the conf string's ``retry_timeout`` in ms wins).
        self.retry_s = (
            int(self.conf.params["retry_timeout"]) / 1000
            if self.conf.params.get("retry_timeout", "").isdigit()
            else cfg.retry_timeout.seconds
        )
        self._new_sender().close(flush=False)  # the client checks the conf string now, not at run time
        log.info(
            "QuestDB sink %s: table %s via %s (from %s)", name, table, self.conf.redacted(), self.conf.source
        )

    def _new_sender(self) -> Sender:
        try:
            return Sender.from_conf(self.conf.text, **self.options)
        except (QuestDBError, ValueError) as exc:
            raise ConfigError(f"{self.conf.source}: {self.conf.scrub(str(exc))}") from None

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _QuestDBPart[R]:
        sender = self._new_sender()
        try:
            sender.establish()  # type: ignore[no-untyped-call]  # the stub has no return type
        except QuestDBError as exc:
            where = f"{self.conf.schema}://{self.conf.addr}"
            raise SinkError(f"QuestDB sink {self.name}: cannot connect to {where}: {self.conf.scrub(str(exc))}") from None  # fmt: skip
        return _QuestDBPart(self, sender)

    def describe_failure(self, exc: QuestDBError, rows: list[R]) -> str:
        """The table, what failed, QuestDB's message and the offending record."""
        message = _clip(self.conf.scrub(str(exc)), 600)
        how = (
            f"after retrying for {format_duration(self.cfg.retry_timeout)}"
            if self.conf.is_http
            else "over TCP"
        )
        text = f"QuestDB table {self.table!r}: flush of {len(rows)} rows failed {how}: {message}"
        match = _LINE.search(str(exc))
        line = int(match.group(1) or match.group(2)) if match else 0
        if 1 <= line <= len(rows):
            return f"{text}; offending row (line {line} of the request): {_clip(repr(rows[line - 1]))}"
        return f"{text}; first row of the request: {_clip(repr(rows[0]))}"


def prices_sink(
    cfg: QuestDBConfig,
    stats: RunStats | None = None,
    env: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> QuestDBSink[PriceUpdate] | None:
    """Price updates into ``cfg.prices_table``; None when the output is off."""
    if not cfg.enabled:
        return None
    return QuestDBSink(
        cfg, cfg.prices_table, write_price, name="questdb_prices", stats=stats, env=env, clock=clock
    )


def candles_sink(
    cfg: QuestDBConfig,
    stats: RunStats | None = None,
    env: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> QuestDBSink[Candle] | None:
    """Candles (every revision) into ``cfg.candles_table``; None when the output is off."""
    if not cfg.enabled:
        return None
    return QuestDBSink(
        cfg, cfg.candles_table, write_candle, name="questdb_candles", stats=stats, env=env, clock=clock
    )


def quotes_sink(
    cfg: QuestDBConfig,
    stats: RunStats | None = None,
    env: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> QuestDBSink[Quote] | None:
    """Quotes of venue feeds into ``cfg.quotes_table``; None when the output is off."""
    if not cfg.enabled:
        return None
    return QuestDBSink(
        cfg, cfg.quotes_table, write_quote, name="questdb_quotes", stats=stats, env=env, clock=clock
    )
