"""Historical trade files: freqtrade JSON, CSV with a column mapping, Kraken REST JSON.

:func:`open_history` returns the file's rows as ``(row_number, raw_row_bytes)`` (rows
numbered from 0 in file order; the raw bytes are the row's own JSON or CSV text so a
dead letter can show it) and a :data:`~ticktape.schemas.venues.Decoder` that turns one raw row
into ``[Tick]``. A malformed row fails alone, when it is decoded; a file that cannot be
read as its format at all raises :class:`~ticktape.schemas.errors.InputError`.

Formats (gzip-compressed or plain, detected from the content):

- ``freqtrade``: one JSON array of ``[ts_ms, trade_id, order_id, side, price, amount,
  cost]``; the symbol comes from the file name (``XRP_ETH-trades.json.gz`` -> ``XRP-ETH``).
- ``csv``: a header line, then one trade per line; :class:`CsvMapping` names the
  columns (defaults fit ``,timestamp,id,type,side,price,amount,cost,date``).
- ``kraken-rest``: ``{"error": [], "result": {"<PAIR>": [[price, volume, time_s,
  "b"|"s", "l"|"m", misc, trade_id], ...], "last": "..."}}``; ``b`` is a buy.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ticktape.schemas.errors import DecodeError, InputError
from ticktape.schemas.records import UNKNOWN, DLCode, Tick
from ticktape.schemas.symbols import normalize
from ticktape.schemas.timeparse import ms_to_ns, rfc3339_to_ns, unit_to_ns
from ticktape.schemas.venues import Decoder, side_of, trade_no_of
from ticktape.schemas.venues._errors import bad_value, map_decode_error, short_repr
from ticktape.schemas.venues.kraken import RestTradeRow, RestTradesReply

Format = Literal["freqtrade", "csv", "kraken-rest"]
FORMATS: tuple[Format, ...] = ("freqtrade", "csv", "kraken-rest")
_GZIP_MAGIC = b"\x1f\x8b"
Rows = Iterator[tuple[int, bytes]]


class CsvMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which CSV columns hold what (``""`` = no such column). ``ts_unit`` is the unit of
    numeric timestamps, or ``rfc3339`` for text timestamps."""

    timestamp: str = "timestamp"
    ts_unit: Literal["s", "ms", "us", "ns", "rfc3339"] = "ms"
    price: str = "price"
    size: str = "amount"
    side: str = "side"
    trade_id: str = "id"
    symbol: str = ""
    delimiter: Annotated[str, Meta(min_length=1, max_length=1)] = ","


class HistorySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How to read a history file. ``venue`` defaults to ``binance`` (freqtrade, csv) or
    ``kraken`` (kraken-rest); ``symbol`` overrides the one derived from the file."""

    format: Format | Literal["auto"] = "auto"
    venue: str = ""
    symbol: str = ""
    csv: CsvMapping = msgspec.field(default_factory=CsvMapping)

    def venue_for(self, fmt: Format) -> str:
        """The venue name used for ``fmt`` files."""
        return self.venue.lower() or ("kraken" if fmt == "kraken-rest" else "binance")


def _open(path: Path) -> io.BufferedIOBase:
    """``path`` opened for reading bytes, transparently gunzipped."""
    try:
        with path.open("rb") as handle:
            gzipped = handle.read(2) == _GZIP_MAGIC
        return gzip.open(path, "rb") if gzipped else path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read history file {path}: {exc.strerror or exc}") from exc


def _read_all(path: Path) -> bytes:
    try:
        with _open(path) as handle:
            return handle.read()
    except (OSError, EOFError) as exc:  # includes a corrupt gzip stream
        raise InputError(f"cannot read history file {path}: {exc}") from exc


def detect_format(path: str | os.PathLike[str]) -> Format:
    """The history format of ``path``, from its name, else from its first bytes."""
    p = Path(path)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith("-trades.json"):
        return "freqtrade"
    with _open(p) as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"["):
        return "freqtrade"
    if head.startswith(b"{"):
        return "kraken-rest"
    if b"," in head.split(b"\n", 1)[0]:
        return "csv"
    raise InputError(f"cannot tell the format of history file {p}; set format explicitly")


def _symbol_from_name(path: Path) -> str:
    """``XRP_ETH-trades.json.gz`` -> ``XRP_ETH`` ("" if the name has no pair)."""
    stem = path.name.split("-trades", 1)[0] if "-trades" in path.name else ""
    parts = stem.split("-", 1)[0].split("_")
    return f"{parts[0]}_{parts[1]}" if len(parts) >= 2 and parts[0] and parts[1] else ""


class FreqtradeRow(msgspec.Struct, frozen=True, array_like=True):
    """``[timestamp_ms, id, order, side, price, amount, cost]``."""

    timestamp: int
    trade_id: str | int | None
    order_id: msgspec.Raw
    side: str | None
    price: float
    amount: float

    def to_ticks(
        self, src: str, offset: int, ts_recv: int, ts_kafka: int, *, venue: str, symbol: str
    ) -> list[Tick]:
        """The tick of this row."""
        tid = self.trade_id
        trade_id = "" if tid is None else str(tid)
        side = UNKNOWN if self.side is None else side_of(self.side)
        return [
            Tick(venue, symbol, self.price, self.amount, side, trade_id, ms_to_ns(self.timestamp),
                 ts_recv, src, offset, ts_kafka, trade_no_of(trade_id))
        ]  # fmt: skip


_ft_decoder = msgspec.json.Decoder(FreqtradeRow, strict=False)
_kr_decoder = msgspec.json.Decoder(RestTradeRow, strict=False)


def _row_decoder(
    decoder: msgspec.json.Decoder[FreqtradeRow] | msgspec.json.Decoder[RestTradeRow],
    venue: str,
    symbol: str,
) -> Decoder:
    decode = decoder.decode

    def decode_row(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        try:
            row: FreqtradeRow | RestTradeRow = decode(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise map_decode_error(exc, raw) from exc
        return row.to_ticks(src, offset, ts_recv, ts_kafka, venue=venue, symbol=symbol)

    return decode_row


def _json_rows(path: Path, data: bytes, what: str) -> list[msgspec.Raw]:
    try:
        return msgspec.json.decode(data, type=list[msgspec.Raw])
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InputError(f"history file {path} is not {what}: {exc}") from exc


def _open_freqtrade(path: Path, spec: HistorySpec) -> tuple[Rows, Decoder]:
    venue = spec.venue_for("freqtrade")
    pair = spec.symbol or _symbol_from_name(path)
    if not pair:
        raise InputError(f"no symbol for {path}: name it PAIR-trades.json(.gz) or set symbol")
    rows = _json_rows(path, _read_all(path), "a freqtrade trades file (a JSON array)")
    return ((i, bytes(r)) for i, r in enumerate(rows)), _row_decoder(
        _ft_decoder, venue, normalize("freqtrade", pair)
    )


def _open_kraken_rest(path: Path, spec: HistorySpec) -> tuple[Rows, Decoder]:
    try:
        doc = msgspec.json.decode(_read_all(path), type=RestTradesReply)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InputError(f"history file {path} is not a Kraken REST trades reply: {exc}") from exc
    if doc.error:
        raise InputError(f"Kraken REST reply {path} reports errors: {doc.error}")
    pairs = [key for key in doc.result if key != "last"]
    if len(pairs) != 1:
        raise InputError(f"Kraken REST reply {path} should hold one pair, found {pairs}")
    venue = spec.venue_for("kraken-rest")
    rows = _json_rows(path, bytes(doc.result[pairs[0]]), "a Kraken REST trades reply")
    symbol = normalize(venue, spec.symbol or pairs[0])
    return ((i, bytes(r)) for i, r in enumerate(rows)), _row_decoder(_kr_decoder, venue, symbol)


def _number(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise bad_value(column, "a decimal number", text) from None


def _csv_lines(path: Path) -> Rows:
    with _open(path) as handle:
        next(handle, None)  # header
        i = 0
        for line in handle:
            row = line.rstrip(b"\r\n")
            if row.strip():
                yield i, row
                i += 1


def _open_csv(path: Path, spec: HistorySpec) -> tuple[Rows, Decoder]:
    m = spec.csv
    with _open(path) as handle:
        header_line = handle.readline().decode("utf-8-sig").rstrip("\r\n")
    header = [name.strip() for name in next(csv.reader([header_line], delimiter=m.delimiter))]

    def column(name: str, role: str) -> int:
        if not name:
            return -1
        if name not in header:
            raise InputError(f"{path}: no column {name!r} for {role}; header is {header}")
        return header.index(name)

    i_ts, i_price = column(m.timestamp, "timestamp"), column(m.price, "price")
    i_size, i_side = column(m.size, "size"), column(m.side, "side")
    i_id, i_sym = column(m.trade_id, "trade_id"), column(m.symbol, "symbol")
    venue = spec.venue_for("csv")
    fixed = normalize(venue, spec.symbol) if spec.symbol else ""
    if i_sym < 0 and not fixed:
        raise InputError(f"no symbol for {path}: set symbol, or csv.symbol to a column")
    used = {i_ts, i_price, i_size, i_side, i_id, i_sym}
    needed = [(i, name) for i, name in enumerate(header) if i in used]
    width = needed[-1][0] + 1
    delim, unit = m.delimiter, m.ts_unit

    def decode_row(raw: bytes, src: str, offset: int, ts_recv: int, ts_kafka: int) -> list[Tick]:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise bad_value("$", "UTF-8 text", short_repr(raw)) from None
        try:
            cells = text.split(delim) if '"' not in text else next(csv.reader([text], delimiter=delim), [])
        except csv.Error as exc:  # e.g. a carriage return inside the row
            raise bad_value("$", "a CSV row", f"{short_repr(raw)} ({exc})") from None
        if len(cells) < width:
            missing = next(name for i, name in needed if i >= len(cells))
            raise DecodeError(DLCode.MISSING_FIELD, missing, "a value", "end of row")
        ts_text = cells[i_ts]
        try:
            ts = rfc3339_to_ns(ts_text) if unit == "rfc3339" else unit_to_ns(ts_text, unit)
        except ValueError:
            raise bad_value(m.timestamp, f"a timestamp in {unit}", ts_text) from None
        price, size = _number(cells[i_price], m.price), _number(cells[i_size], m.size)
        side = side_of(cells[i_side].strip()) if i_side >= 0 and cells[i_side] else UNKNOWN
        trade_id = cells[i_id].strip() if i_id >= 0 else ""
        symbol = normalize(venue, cells[i_sym]) if i_sym >= 0 else fixed
        return [
            Tick(venue, symbol, price, size, side, trade_id, ts, ts_recv, src, offset,
                 ts_kafka, trade_no_of(trade_id))
        ]  # fmt: skip

    return _csv_lines(path), decode_row


def check_history(path: str | os.PathLike[str], spec: HistorySpec | None = None) -> Format:
    """The format of the history file at ``path``, after the checks :func:`open_history`
    would fail (missing file, unknown format, no symbol, CSV columns) without reading
    the rows of a large file; raises :class:`InputError`."""
    p = Path(path)
    spec = spec or HistorySpec()
    if not p.is_file():
        raise InputError(f"history file not found: {p}")
    fmt = detect_format(p) if spec.format == "auto" else spec.format
    if fmt == "freqtrade" and not (spec.symbol or _symbol_from_name(p)):
        raise InputError(f"no symbol for {p}: name it PAIR-trades.json(.gz) or set symbol")
    if fmt == "csv":
        _open_csv(p, spec)  # reads the header line only
    elif fmt == "kraken-rest":
        _open_kraken_rest(p, spec)  # one REST reply: small
    return fmt


def open_history(path: str | os.PathLike[str], spec: HistorySpec | None = None) -> tuple[Rows, Decoder]:
    """``(rows, decoder)`` for the history file at ``path``; see the module docstring.

    Raises :class:`InputError` if the file is missing, of unknown format, lacks a symbol,
    or cannot be parsed as its format at all.
    """
    p = Path(path)
    spec = spec or HistorySpec()
    if not p.is_file():
        raise InputError(f"history file not found: {p}")
    fmt = detect_format(p) if spec.format == "auto" else spec.format
    if fmt == "freqtrade":
        return _open_freqtrade(p, spec)
    if fmt == "kraken-rest":
        return _open_kraken_rest(p, spec)
    return _open_csv(p, spec)
