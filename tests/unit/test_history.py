"""ticktape.schemas.history: freqtrade, CSV and Kraken REST trade files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgspec
import pytest

from tests.support import records
from ticktape.schemas.errors import DecodeError, InputError
from ticktape.schemas.history import CsvMapping, HistorySpec, detect_format, open_history
from ticktape.schemas.records import DLCode, Tick

DATA = Path(__file__).resolve().parent.parent / "data" / "trades"
XRP = DATA / "XRP_ETH-trades.json.gz"
CSV = DATA / "public_trades_list.csv"
KRAKEN = DATA / "kraken_XBTUSDT_http_trades.json"
CSV_SPEC = HistorySpec(symbol="ETH/USDT")


def decode_all(path: Path, spec: HistorySpec | None = None) -> list[tuple[int, bytes, Tick]]:
    rows, decoder = open_history(path, spec)
    out = []
    for row, raw in rows:
        (t,) = decoder(raw, f"file:{path.name}", row, 7, 0)
        out.append((row, raw, t))
    return out


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(XRP) == "freqtrade"
    assert detect_format(CSV) == "csv"
    assert detect_format(KRAKEN) == "kraken-rest"
    # Without telling names, the content decides.
    for src, name in ((XRP, "a.bin"), (KRAKEN, "b.bin"), (CSV, "c.txt")):
        (tmp_path / name).write_bytes(src.read_bytes())
    assert detect_format(tmp_path / "a.bin") == "freqtrade"
    assert detect_format(tmp_path / "b.bin") == "kraken-rest"
    assert detect_format(tmp_path / "c.txt") == "csv"
    (tmp_path / "d.txt").write_text("hello\n")
    with pytest.raises(InputError, match=r"d\.txt"):
        detect_format(tmp_path / "d.txt")


def test_freqtrade_all_rows() -> None:
    decoded = decode_all(XRP)
    assert len(decoded) == 12_477
    assert [row for row, _, _ in decoded] == list(range(12_477))
    _, raw, first = decoded[0]
    assert raw == b'[1570752011620,"13519807",null,"sell",0.00141342,23.0,0.03250866]'
    assert first == records.tick(
        venue="binance", symbol="XRP-ETH", price=0.00141342, size=23.0, side="sell",
        trade_id="13519807", ts_event=1_570_752_011_620_000_000, ts_recv=7,
        src="file:XRP_ETH-trades.json.gz", offset=0, trade_no=13519807,
    )  # fmt: skip
    last = decoded[-1][2]
    assert (last.trade_id, last.side, last.price, last.size) == (
        "13532283",
        "sell",
        0.00152787,
        130.0,
    )
    assert last.ts_event == 1_570_965_568_844_000_000
    assert {t.side for _, _, t in decoded} == {"buy", "sell"}


def test_freqtrade_plain_json_and_spec_overrides(tmp_path: Path) -> None:
    plain = tmp_path / "whatever.json"
    plain.write_bytes(gzip.decompress(XRP.read_bytes()))
    with pytest.raises(InputError, match="no symbol"):
        open_history(plain)
    spec = HistorySpec(format="freqtrade", venue="Kraken", symbol="xrp/eth")
    decoded = decode_all(plain, spec)
    assert len(decoded) == 12_477
    assert (decoded[5][2].venue, decoded[5][2].symbol) == ("kraken", "XRP-ETH")


def test_freqtrade_bad_row_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-trades.json"
    path.write_text(
        '[[1, "1", null, "buy", 10.5, 2.0, 21.0],'
        ' [2, "2", null, "sell", "abc", 1.0, 1.0],'
        " [3],"
        ' [4, null, null, null, "11", "1", null]]'
    )
    rows, decoder = open_history(path)
    results: list[list[Tick] | DecodeError] = []
    for row, raw in rows:
        try:
            results.append(decoder(raw, "f", row, 0, 0))
        except DecodeError as exc:
            results.append(exc)
    ok, bad_price, short, nulls = results
    assert isinstance(ok, list)
    assert ok[0].symbol == "BTC-USDT"
    assert isinstance(bad_price, DecodeError)
    assert (bad_price.code, bad_price.field) == (DLCode.DECODE_ERROR, "$[4]")
    assert isinstance(short, DecodeError)
    assert short.code == DLCode.DECODE_ERROR
    assert "length" in str(short)
    assert isinstance(nulls, list)
    assert (nulls[0].trade_id, nulls[0].side, nulls[0].price) == ("", "unknown", 11.0)


@pytest.mark.parametrize("content", [b"not json at all", b'{"a": 1}', b"[[1, 2]"])
def test_unreadable_json_file_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ETH_BTC-trades.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"ETH_BTC-trades\.json"):
        open_history(path)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="not found"):
        open_history(DATA / "nope.json")


def test_csv_all_rows() -> None:
    decoded = decode_all(CSV, CSV_SPEC)
    assert len(decoded) == 1_000
    assert [row for row, _, _ in decoded] == list(range(1_000))
    _, raw, first = decoded[0]
    assert raw == (
        b"0,1675329600138,1206419187,,buy,1666.8,26.062,43440.1416,2023-02-02 09:20:00.138000+00:00"
    )
    assert first == records.tick(
        venue="binance", symbol="ETH-USDT", price=1666.8, size=26.062, side="buy",
        trade_id="1206419187", ts_event=1_675_329_600_138_000_000, ts_recv=7,
        src="file:public_trades_list.csv", offset=0, trade_no=1206419187,
    )  # fmt: skip
    last = decoded[-1][2]
    assert (last.trade_id, last.price, last.size, last.ts_event) == (
        "1206420186", 1667.3, 0.018, 1_675_329_807_493_000_000
    )  # fmt: skip


def test_csv_text_timestamps_agree_with_ms_column() -> None:
    by_date = HistorySpec(symbol="ETH-USDT", csv=CsvMapping(timestamp="date", ts_unit="rfc3339"))
    a = [t.ts_event for _, _, t in decode_all(CSV, CSV_SPEC)]
    b = [t.ts_event for _, _, t in decode_all(CSV, by_date)]
    assert a == b


def test_csv_mapping_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "fills.csv"
    path.write_text(
        "sym;t;px;qty;dir\n"
        "btc_usd;1700000000.5;100.5;2;S\n"
        "\n"
        'eth/usd;1700000001;"1,5";1;\n'
        "btc_usd;1700000002;abc;1;buy\n"
        "btc_usd;1700000003\n"
    )
    mapping = CsvMapping(
        timestamp="t", ts_unit="s", price="px", size="qty", side="dir", trade_id="", symbol="sym",
        delimiter=";",
    )  # fmt: skip
    rows, decoder = open_history(path, HistorySpec(venue="generic", csv=mapping))
    rows_list = list(rows)
    assert [row for row, _ in rows_list] == [0, 1, 2, 3]  # the blank line is not a row
    (t,) = decoder(rows_list[0][1], "f", 0, 0, 0)
    assert (t.symbol, t.ts_event, t.price, t.side, t.trade_id) == (
        "BTC-USD", 1_700_000_000_500_000_000, 100.5, "s", ""
    )  # fmt: skip
    with pytest.raises(DecodeError) as info:
        decoder(rows_list[1][1], "f", 1, 0, 0)  # quoted "1,5" is one cell, not a number
    assert (info.value.field, info.value.got) == ("px", "1,5")
    with pytest.raises(DecodeError) as info:
        decoder(rows_list[2][1], "f", 2, 0, 0)
    assert (info.value.code, info.value.field, info.value.got) == (DLCode.DECODE_ERROR, "px", "abc")
    with pytest.raises(DecodeError) as info:
        decoder(rows_list[3][1], "f", 3, 0, 0)
    assert (info.value.code, info.value.field) == (DLCode.MISSING_FIELD, "px")


def test_csv_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no symbol"):
        open_history(CSV)
    with pytest.raises(InputError, match="no column 'qty'"):
        open_history(CSV, HistorySpec(symbol="X-Y", csv=CsvMapping(size="qty")))
    with pytest.raises(msgspec.ValidationError, match="unknown field `colour`"):
        msgspec.convert({"format": "csv", "csv": {"colour": "red"}}, HistorySpec)
    spec = msgspec.convert({"format": "csv", "csv": {"ts_unit": "us"}}, HistorySpec)
    assert (spec.csv.ts_unit, spec.csv.price, spec.venue_for("csv")) == ("us", "price", "binance")


def test_kraken_rest_all_rows() -> None:
    decoded = decode_all(KRAKEN)
    assert len(decoded) == 1_000
    first = decoded[0][2]
    assert first == records.tick(
        venue="kraken", symbol="BTC-USDT", price=105433.6, size=0.00027625, side="buy",
        trade_id="10218208", ts_event=1_762_795_433_971_744_500, ts_recv=7,
        src="file:kraken_XBTUSDT_http_trades.json", offset=0, trade_no=10218208,
    )  # fmt: skip
    assert json.loads(decoded[0][1]) == [
        "105433.60000", "0.00027625", 1762795433.9717445, "b", "l", "", 10218208
    ]  # fmt: skip
    assert [t.trade_no for _, _, t in decoded] == list(range(10218208, 10219208))
    last = decoded[-1][2]
    assert (last.side, last.ts_event) == ("sell", 1_762_820_035_982_277_900)
    assert {t.side for _, _, t in decoded} == {"buy", "sell"}


def test_kraken_rest_errors(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('{"error": ["EGeneral:Too many requests"], "result": {}}')
    with pytest.raises(InputError, match="Too many requests"):
        open_history(path)
    path.write_text('{"error": [], "result": {"XXBTZUSD": [["1.5", "2", "x", "s", "m", ""]]}}')
    rows, decoder = open_history(path)
    ((row, raw),) = list(rows)
    with pytest.raises(DecodeError) as info:
        decoder(raw, "f", row, 0, 0)
    assert info.value.field == "$[2]"
    path.write_text('{"error": [], "result": {"XXBTZUSD": [["1.5", "2", 1700000000.25, "s", "m", ""]]}}')
    rows, decoder = open_history(path)
    ((row, raw),) = list(rows)
    (t,) = decoder(raw, "f", row, 0, 0)
    assert (t.symbol, t.side, t.trade_id, t.trade_no, t.ts_event) == (
        "BTC-USD", "sell", "", -1, 1_700_000_000_250_000_000
    )  # fmt: skip
