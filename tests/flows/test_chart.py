"""``ticktape chart``: the PNG shows exactly the stored candles (latest revisions).

No golden images: each chart is decoded and checked against the candles through the
geometry :func:`ticktape.flows.charts.candlestick.render_candles` reports (pixel x, body and wick rows).
"""

from __future__ import annotations

import itertools
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from tests.support import records
from ticktape.flows.charts.candlestick import DOWN_COLOR, EMPTY_COLOR, UP_COLOR, ChartInfo, render_candles
from ticktape.flows.cli.chart import chart
from ticktape.schemas.errors import InputError, MissingDependencyError
from ticktape.schemas.records import Candle
from ticktape.sinks.candles.store import CandleStore

M = 60_000_000_000
T0 = 1_718_000_040 * 1_000_000_000  # a minute boundary (2024-06-10T06:14Z)
WINDOWS = 30
DOJI, EMPTY, REVISED = 3, 12, 7
TITLE = "BTC-USD test chart"
Image = npt.NDArray[np.int_]


def candle(
    i: int, o: float, h: float, lo: float, c: float, v: float, *, trades: int = 5, **kw: object
) -> Candle:
    base: dict[str, object] = {
        "venue": "binance", "symbol": "BTC-USD", "interval": 60, "start": T0 + i * M, "end": T0 + (i + 1) * M,
        "open": o, "high": h, "low": lo, "close": c, "volume": v, "notional": v * c, "vwap": c, "trades": trades,
        "buy_volume": v / 2, "sell_volume": v / 2, "first_trade_id": "1", "last_trade_id": "2", "revision": 0,
        "ts_final": 0,
    }  # fmt: skip
    return records.candle(**(base | kw))


def series() -> tuple[list[Candle], list[Candle]]:
    """30 windows (up, down, a doji, an empty window) as latest revisions, and the stale
    revision 0 of window REVISED (up, while its revision 1 is down)."""
    rnd = random.Random(7)
    out, price = [], 100.0
    for i in range(WINDOWS):
        if i == EMPTY:
            out.append(candle(i, price, price, price, price, 0.0, trades=0))
            continue
        step = 0.0 if i == DOJI else rnd.choice((-1, 1)) * rnd.uniform(0.4, 3.0)
        if i == REVISED:
            step = -abs(step)
        close = price + step
        high = max(price, close) + rnd.uniform(0.3, 2.0)
        low = min(price, close) - rnd.uniform(0.3, 2.0)
        out.append(candle(i, price, high, low, close, rnd.uniform(2, 50), revision=1 if i == REVISED else 0))
        price = close
    old = out[REVISED]
    stale = candle(REVISED, old.open, old.high + 1, old.low, old.open + 1.5, 99.0, revision=0)
    return out, [stale]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Candle]]:
    data = tmp_path_factory.mktemp("chart")
    latest, stale = series()
    candles = CandleStore(data / "candles")
    candles.append(stale)  # an older file with revision 0 of one window
    candles.append(latest)
    others = [candle(i, 50, 51, 49, 50.5, 3, venue="coinbase") for i in range(5)]
    others += [candle(i, 5, 6, 4, 5.5, 1, symbol="ETH-USD") for i in range(5)]
    others.append(candle(0, 100, 101, 99, 100.5, 10, interval=300, end=T0 + 5 * M))
    candles.append(others)
    return data, latest


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from IHDR, after checking the signature, every chunk CRC and the
    length of the decompressed image data."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + width * {2: 3, 6: 4}[colour])
    return width, height


def decode(path: Path) -> Image:
    pixels: Image = np.rint(imread(path)[:, :, :3] * 255).astype(int)
    return pixels


def rgb(color: str) -> tuple[int, ...]:
    return tuple(round(v * 255) for v in to_rgb(color))


def run_of(mask: npt.NDArray[np.bool_], row: int) -> tuple[int, int]:
    """First and last row of the contiguous True run of ``mask`` through ``row``."""
    assert mask[row], row
    top = bottom = row
    while top > 0 and mask[top - 1]:
        top -= 1
    while bottom < len(mask) - 1 and mask[bottom + 1]:
        bottom += 1
    return top, bottom


def check_chart(path: Path, info: ChartInfo, candles: list[Candle], size: tuple[int, int]) -> None:
    assert png_size(path) == size == (info.width, info.height)
    img = decode(path)
    assert img.shape == (size[1], size[0], 3)
    assert len(info.candles) == len(candles)
    # the reported geometry is one affine projection of the prices
    prices = np.array([c.high for c in candles] + [c.low for c in candles])
    rows = np.array([b.wick_top for b in info.candles] + [b.wick_bottom for b in info.candles])
    slope, offset = np.polyfit(prices, rows, 1)
    assert slope < 0
    assert np.abs(prices * slope + offset - rows).max() < 1e-6
    xs = [b.x for b in info.candles]
    assert all(b - a > 2 * info.candles[0].half_width for a, b in itertools.pairwise(xs))

    measured_close = []
    vol_heights = []
    for box, c in zip(info.candles, candles, strict=True):
        assert box.start == c.start
        expected = EMPTY_COLOR if c.trades == 0 else UP_COLOR if c.close >= c.open else DOWN_COLOR
        assert box.color == expected
        colour = np.all(img == rgb(expected), axis=2)  # [row, col]
        col, side = round(box.x), round(box.x + box.half_width / 2)
        centre = round((box.body_top + box.body_bottom) / 2)
        if box.body_bottom - box.body_top < 3:  # doji / empty: a one-pixel line
            centre = next(r for r in range(centre - 1, centre + 2) if colour[r, side])
        assert colour[centre, col], (c, centre)  # on the wick
        assert colour[centre, side], (c, centre)  # body fill, off the wick
        body = run_of(colour[:, side], centre)
        assert np.allclose(body, (box.body_top, box.body_bottom), rtol=0, atol=2), (c, body, box)
        wick = run_of(colour[:, col - 1 : col + 2].any(axis=1), centre)
        assert np.allclose(wick, (box.wick_top, box.wick_bottom), rtol=0, atol=2), (c, wick, box)
        if c.trades == 0:
            assert wick[1] - wick[0] <= 2  # flat tick, no wick
        measured_close.append(body[0] if c.close >= c.open else body[1])
        top, bottom = round(info.volume_box[1]), round(info.volume_box[3])
        vol_heights.append(int(colour[top : bottom + 2, side].sum()))

    # bodies are ordered like closes (rows grow downwards)
    closes = [c.close for c in candles]
    step = -slope  # pixels per price unit
    for i, a in enumerate(closes):
        for j, b in enumerate(closes):
            if (b - a) * step > 3:
                assert measured_close[j] < measured_close[i], (i, j)
            elif b > a:
                assert measured_close[j] <= measured_close[i] + 1, (i, j)
    # volume bars are proportional to volume
    volumes = np.array([c.volume for c in candles])
    scale = vol_heights[int(volumes.argmax())] / volumes.max()
    assert np.abs(np.array(vol_heights) - volumes * scale).max() <= 2, vol_heights
    assert all(h == 0 for h, v in zip(vol_heights, volumes, strict=True) if v == 0)


def reference(tmp: Path, candles: list[Candle], size: tuple[int, int]) -> tuple[Path, ChartInfo]:
    path = tmp / "reference.png"
    return path, render_candles(candles, path, title=TITLE, width=size[0], height=size[1])


def test_render_candles_draws_every_candle(store: tuple[Path, list[Candle]], tmp_path: Path) -> None:
    _, latest = store
    for size in ((1200, 700), (1001, 677)):
        path, info = reference(tmp_path, latest, size)
        check_chart(path, info, latest, size)
    kinds = [b.kind for b in info.candles]
    assert (kinds[DOJI], kinds[EMPTY], kinds[REVISED]) == ("up", "empty", "down")
    assert {"up", "down"} <= set(kinds)


def test_runner_charts_latest_revisions(store: tuple[Path, list[Candle]], tmp_path: Path) -> None:
    data, latest = store
    out = tmp_path / "sub" / "btc.png"
    args = ["BTC-USD", "--venue", "binance", "--data-dir", str(data), "--out", str(out)]
    result = CliRunner().invoke(chart, [*args, "--width", "1000", "--height", "600", "--title", TITLE])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (1000x600): 30 1m candles of BTC-USD@binance (1 without trades)" in result.output
    ref, info = reference(tmp_path, latest, (1000, 600))
    assert np.array_equal(decode(out), decode(ref))  # the CLI drew exactly these candles
    check_chart(out, info, latest, (1000, 600))

    ranged = tmp_path / "ranged.png"
    frm, to = "2024-06-10T06:19:00Z", str(T0 + 20 * M)
    result = CliRunner().invoke(chart, [*args[:-1], str(ranged), "--from", frm, "--to", to, "--title", TITLE])
    assert result.exit_code == 0, result.output
    assert "15 1m candles" in result.output
    ref, info = reference(tmp_path, latest[5:20], (1200, 700))
    assert np.array_equal(decode(ranged), decode(ref))
    check_chart(ranged, info, latest[5:20], (1200, 700))


def test_runner_user_mistakes(store: tuple[Path, list[Candle]], tmp_path: Path) -> None:
    data, _ = store
    runner = CliRunner()

    def fails(*args: str) -> str:
        result = runner.invoke(chart, [*args, "--data-dir", str(data), "--out", str(tmp_path / "x.png")])
        assert isinstance(result.exception, InputError), result.output  # `ticktape` exits 2
        return str(result.exception)

    assert "no 1m candles for DOGE-USD in" in fails("DOGE-USD")
    msg = fails("BTC-USD", "--venue", "binance", "--interval", "1h")
    assert "no 1h candles for BTC-USD@binance" in msg
    assert "stored intervals for BTC-USD@binance: 1m, 5m" in msg
    assert "from 2030-01-01 00:00:00 to the end" in fails(
        "BTC-USD", "--venue", "binance", "--from", "2030-01-01"
    )
    assert "several venues (binance, coinbase): pick one with --venue" in fails("BTC-USD")
    assert "whole seconds" in fails("BTC-USD", "--interval", "500ms")
    assert not (tmp_path / "x.png").exists()
    result = runner.invoke(chart, ["BTC-USD", "--width", "10"])
    assert result.exit_code == 2
    assert "--width" in result.output


def test_render_candles_rejects_mixed_input(store: tuple[Path, list[Candle]], tmp_path: Path) -> None:
    _, latest = store
    path = tmp_path / "x.png"
    with pytest.raises(ValueError, match="no candles"):
        render_candles([], path, title="")
    with pytest.raises(ValueError, match="one series"):
        render_candles([latest[0], candle(1, 1, 1, 1, 1, 1, venue="coinbase")], path, title="")
    with pytest.raises(ValueError, match="latest revision"):
        render_candles([latest[0], latest[0]], path, title="")


def test_missing_matplotlib_names_the_extra(
    store: tuple[Path, list[Candle]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = store
    monkeypatch.delitem(sys.modules, "ticktape.flows.charts.candlestick")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    result = CliRunner().invoke(chart, ["BTC-USD", "--data-dir", str(data), "--out", str(tmp_path / "x.png")])
    assert isinstance(result.exception, MissingDependencyError)
    assert "pip install 'ticktape[chart]'" in str(result.exception)


def ticktape(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, check=False, env=env,
    )  # fmt: skip


def test_subprocess_chart(store: tuple[Path, list[Candle]], tmp_path: Path) -> None:
    data, latest = store
    result = ticktape(
        "chart", "BTC-USD", "--venue", "binance", "--interval", "1m", "--data-dir", str(data),
        "--title", TITLE, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "30 1m candles of BTC-USD@binance" in result.stdout
    out = tmp_path / "chart.png"
    ref, info = reference(tmp_path, latest, (1200, 700))
    assert np.array_equal(decode(out), decode(ref))
    check_chart(out, info, latest, (1200, 700))
    missing = ticktape("chart", "DOGE-USD", "--data-dir", str(data), cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no 1m candles for DOGE-USD")
