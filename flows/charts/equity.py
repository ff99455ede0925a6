"""Equity and drawdown of a backtest as a PNG (matplotlib Agg, object-oriented API only,
like :mod:`ticktape.flows.charts.candlestick`).

Layout: equity (top, 70%) above drawdown (bottom, filled below zero), sharing a UTC time
axis; fills are marked on the equity curve (buys up-coloured, sells down-coloured).
The image depends only on its inputs (no timestamps in the file), so the same backtest
draws the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from ticktape.schemas.errors import MissingDependencyError

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter, ScalarFormatter
except ImportError as exc:  # pragma: no cover - exercised with matplotlib hidden
    raise MissingDependencyError("matplotlib", "chart") from exc

_NS_PER_DAY = 86_400_000_000_000
DPI = 100
UP, DOWN, LINE, FILL = "#26a69a", "#ef5350", "#1f4e79", "#ef9a9a"


def render_equity(
    ts: Sequence[int],
    equity: Sequence[float],
    drawdown: Sequence[float],
    path: Path,
    *,
    title: str,
    fills: Sequence[tuple[int, int]] = (),
    width: int = 1200,
    height: int = 700,
) -> Path:
    """Draw the curve (``fills``: ``(ts, side)`` with side 1 buy / -1 sell) into ``path``."""
    if len(ts) < 1:
        raise ValueError("no equity samples to draw")
    fig = Figure(figsize=((width + 1e-6) / DPI, (height + 1e-6) / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.36, 0.89, 0.56))
    ax_dd = fig.add_axes((0.08, 0.08, 0.89, 0.24), sharex=ax)
    x = [t / _NS_PER_DAY for t in ts]
    ax.plot(x, list(equity), color=LINE, linewidth=1.0)
    if fills:
        import bisect

        for side, color, marker in ((1, UP, "^"), (-1, DOWN, "v")):
            pts = [f[0] for f in fills if f[1] == side]
            xs = [t / _NS_PER_DAY for t in pts]
            ys = [equity[max(bisect.bisect_right(ts, t) - 1, 0)] for t in pts]
            if xs:
                ax.scatter(xs, ys, s=14, color=color, marker=marker, zorder=3, linewidths=0)
    dd = [-d for d in drawdown]
    ax_dd.fill_between(x, dd, 0.0, color=FILL, linewidth=0)
    ax_dd.plot(x, dd, color=DOWN, linewidth=0.8)
    ax_dd.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax_dd.xaxis.set_major_locator(locator)
    ax_dd.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.tick_params(labelbottom=False)
    for panel, label in ((ax, "equity"), (ax_dd, "drawdown")):
        panel.grid(True, color="#e8e8e8", linewidth=0.72)
        panel.set_ylabel(label)
    ax_dd.set_xlabel("time (UTC)")
    ax.set_title(title, loc="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return path
