"""Candlestick charts (PNG) of stored candles, drawn with matplotlib's Agg renderer.

Only the object-oriented API is used (``Figure`` + ``FigureCanvasAgg``, never
``pyplot``), so no GUI backend is touched and charts can be rendered from any thread.

Layout: a price panel (wicks high-low, bodies open-close) above a volume panel (bars
coloured like their candle), sharing a UTC time axis. A candle is *up* when
``close >= open`` (a doji is drawn as a one-pixel up-coloured body), *down* otherwise;
an empty window (``trades == 0``) is a flat grey tick at its close with no volume bar.
Margins are fixed in pixels, so the geometry depends only on the candles and the size.

:func:`render_candles` returns a :class:`ChartInfo`: where every candle was drawn, in
image pixels (origin top-left, ``y`` grows downwards, as in the decoded PNG array),
computed from matplotlib's data-to-display transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Literal

import numpy as np

from ticktape.schemas.errors import MissingDependencyError
from ticktape.schemas.records import Candle

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, ScalarFormatter
except ImportError as exc:  # pragma: no cover - exercised with matplotlib hidden
    raise MissingDependencyError("matplotlib", "chart") from exc

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
EMPTY_COLOR = "#9e9e9e"
DPI = 100
BODY_FRACTION = 0.7  # of the window width
_NS_PER_DAY = 86_400_000_000_000
# fixed margins in pixels: left, right, top, bottom, gap between the panels
_LEFT, _RIGHT, _TOP, _BOTTOM, _GAP = 90, 25, 45, 55, 12
_VOLUME_SHARE = 0.25  # of the plotting height

Kind = Literal["up", "down", "empty"]


@dataclass(frozen=True, slots=True)
class CandleBox:
    """Where one candle was drawn, in image pixels (origin top-left, y downwards)."""

    start: int  # window start, ns
    kind: Kind
    color: str  # "#rrggbb"
    x: float  # centre of the window
    half_width: float  # half the body width
    body_top: float  # max(open, close)
    body_bottom: float  # min(open, close)
    wick_top: float  # high
    wick_bottom: float  # low
    volume_top: float  # the bar's top (== volume_bottom when volume is 0)
    volume_bottom: float  # the volume panel's zero line


@dataclass(frozen=True, slots=True)
class ChartInfo:
    """What :func:`render_candles` drew: the image size, panel boxes, every candle."""

    path: Path
    width: int
    height: int
    price_box: tuple[float, float, float, float]  # left, top, right, bottom (pixels)
    volume_box: tuple[float, float, float, float]
    candles: tuple[CandleBox, ...]


def kind_of(candle: Candle) -> Kind:
    """``empty`` without trades, else ``up`` when ``close >= open``, else ``down``."""
    if candle.trades == 0:
        return "empty"
    return "up" if candle.close >= candle.open else "down"


_COLORS: dict[Kind, str] = {"up": UP_COLOR, "down": DOWN_COLOR, "empty": EMPTY_COLOR}


def _limits(lo: float, hi: float) -> tuple[float, float]:
    """Axis limits with 5 % headroom; a flat series gets a band around its value."""
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.02 or 1.0
        return lo - span / 2, hi + span / 2
    return lo - span * 0.05, hi + span * 0.05


def _check(candles: Sequence[Candle]) -> list[Candle]:
    if not candles:
        raise ValueError("no candles to draw")
    series = {(c.venue, c.symbol, c.interval) for c in candles}
    if len(series) > 1:
        raise ValueError(f"one series per chart (venue, symbol, interval), got {sorted(series)}")
    ordered = sorted(candles, key=lambda c: c.start)
    if len({c.start for c in ordered}) != len(ordered):
        raise ValueError("several candles for one window: pass the latest revision of each")
    return ordered


def render_candles(
    candles: Sequence[Candle],
    path: Path,
    *,
    title: str,
    width: int = 1200,
    height: int = 700,
) -> ChartInfo:
    """Draw ``candles`` (one venue, symbol and interval) as a PNG of exactly
    ``width`` x ``height`` pixels at ``path``; returns where each candle was drawn."""
    ordered = _check(candles)
    if width < 2 * (_LEFT + _RIGHT) or height < 2 * (_TOP + _BOTTOM + _GAP):
        raise ValueError(f"chart size {width}x{height} is too small")
    # int(inches * dpi) sizes the Agg buffer: nudge up so rounding never loses a pixel
    fig = Figure(figsize=((width + 1e-6) / DPI, (height + 1e-6) / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    plot_h = height - _TOP - _BOTTOM - _GAP
    vol_h = plot_h * _VOLUME_SHARE
    left, plot_w = _LEFT / width, (width - _LEFT - _RIGHT) / width
    ax_vol = fig.add_axes((left, _BOTTOM / height, plot_w, vol_h / height))
    ax = fig.add_axes(
        (left, (_BOTTOM + vol_h + _GAP) / height, plot_w, (plot_h - vol_h) / height), sharex=ax_vol
    )

    interval_days = ordered[0].interval * 1_000_000_000 / _NS_PER_DAY
    x = [c.start / _NS_PER_DAY + interval_days / 2 for c in ordered]  # date numbers, epoch 1970
    half = interval_days * BODY_FRACTION / 2
    kinds = [kind_of(c) for c in ordered]
    colors = [_COLORS[k] for k in kinds]
    pixel = 72 / DPI  # one pixel in points

    wicks = [((xi, c.low), (xi, c.high)) for xi, c in zip(x, ordered, strict=True)]
    bodies = [
        [(xi - half, c.open), (xi + half, c.open), (xi + half, c.close), (xi - half, c.close)]
        for xi, c in zip(x, ordered, strict=True)
    ]
    ax.add_collection(LineCollection(wicks, colors=colors, linewidths=pixel, antialiaseds=False, zorder=2))
    ax.add_collection(
        PolyCollection(
            bodies, facecolors=colors, edgecolors=colors, linewidths=pixel, antialiaseds=False, zorder=3
        )
    )
    bars = [
        [(xi - half, 0.0), (xi + half, 0.0), (xi + half, c.volume), (xi - half, c.volume)]
        for xi, c in zip(x, ordered, strict=True)
        if c.volume > 0
    ]
    bar_colors = [col for col, c in zip(colors, ordered, strict=True) if c.volume > 0]
    ax_vol.add_collection(  # edges keep bars narrower than a pixel visible on long ranges
        PolyCollection(
            bars, facecolors=bar_colors, edgecolors=bar_colors, linewidths=pixel, antialiaseds=False, zorder=2
        )
    )

    ax.set_ylim(*_limits(min(c.low for c in ordered), max(c.high for c in ordered)))
    ax_vol.set_ylim(0, max(c.volume for c in ordered) * 1.1 or 1.0)
    ax_vol.set_xlim(x[0] - interval_days, x[-1] + interval_days)
    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]  # dates.py has no stubs
    ax_vol.xaxis.set_major_locator(locator)
    ax_vol.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.tick_params(labelbottom=False)
    ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax_vol.yaxis.set_major_formatter(EngFormatter())
    for panel, label in ((ax, "price"), (ax_vol, "volume")):
        panel.set_axisbelow(True)  # the grid stays under the candles
        panel.grid(True, color="#e8e8e8", linewidth=pixel)
        panel.set_ylabel(label)
    ax_vol.set_xlabel("time (UTC)")
    ax.set_title(title, loc="left")

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    # limits and axes positions are fixed above, so the transforms are the saved layout's
    return _info(canvas, ax, ax_vol, ordered, kinds, x, half, path)


def _info(
    canvas: FigureCanvasAgg,
    ax: Axes,
    ax_vol: Axes,
    ordered: list[Candle],
    kinds: list[Kind],
    x: list[float],
    half: float,
    path: Path,
) -> ChartInfo:
    """Project every candle through the axes' data-to-display transforms (display
    coordinates have their origin bottom-left; images top-left)."""
    fig_h = float(canvas.figure.bbox.height)

    def box(panel: Axes) -> tuple[float, float, float, float]:
        b = panel.get_window_extent()
        return (float(b.x0), fig_h - float(b.y1), float(b.x1), fig_h - float(b.y0))

    def rows(panel: Axes, values: list[float]) -> list[float]:
        pts = panel.transData.transform(np.column_stack([x, values]))
        return [fig_h - float(v) for v in pts[:, 1]]

    centres = ax.transData.transform(np.column_stack([x, [c.low for c in ordered]]))[:, 0]
    edges = ax.transData.transform(np.column_stack([[xi + half for xi in x], [c.low for c in ordered]]))[:, 0]
    columns = zip(
        ordered, kinds, centres, edges,
        rows(ax, [max(c.open, c.close) for c in ordered]), rows(ax, [min(c.open, c.close) for c in ordered]),
        rows(ax, [c.high for c in ordered]), rows(ax, [c.low for c in ordered]),
        rows(ax_vol, [c.volume for c in ordered]), rows(ax_vol, [0.0] * len(ordered)),
        strict=True,
    )  # fmt: skip
    out = tuple(
        CandleBox(c.start, kind, _COLORS[kind], float(xc), float(xe - xc), *ys)
        for c, kind, xc, xe, *ys in columns
    )
    width, height = canvas.get_width_height()
    return ChartInfo(path, width, height, box(ax), box(ax_vol), out)
