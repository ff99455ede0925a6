"""``ticktape bench --profile PATH``: profile the chosen scenarios and say where the time goes.

With pyinstrument (the ``dev`` extra) the scenarios run under its statistical profiler
(1 ms samples) and ``PATH`` gets its report: HTML for ``.html``/``.htm``, the call tree
as text otherwise. Without it, :mod:`cProfile` (deterministic, so slower and heavier on
small functions) and ``PATH`` gets a :mod:`pstats` text summary (top 40 by own time and
by cumulative time; the raw stats go to ``PATH.prof`` for snakeviz & co).

Either way the profile covers the *calling thread*: the flow benches run their single
Bytewax worker there (``run_main``), so every step, operator callback and sink write is
in it; the event-log writer thread and other background threads are not. The summary
printed after the run lists the functions with the most own time (where the CPU went).
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TOP = 15


@dataclass
class ProfileReport:
    """What :func:`profile_call` wrote and the top functions by own time."""

    path: Path
    tool: str
    seconds: float
    top: list[tuple[str, float]] = field(default_factory=list)  # (function at file:line, own s)
    extra_paths: list[Path] = field(default_factory=list)
    by_file: list[tuple[str, float]] = field(default_factory=list)  # (file, own s)

    def lines(self) -> list[str]:
        out = [f"profile ({self.tool}, {self.seconds:.1f} s sampled) written to {self.path}"]
        out += [f"  {p}" for p in self.extra_paths]
        out.append(f"top {len(self.top)} functions by own time:")
        for name, own in self.top:
            share = own / self.seconds if self.seconds else 0.0
            out.append(f"  {own:8.3f} s {share:6.1%}  {name}")
        if self.by_file:
            out.append(f"top {len(self.by_file)} files by own time:")
        for name, own in self.by_file:
            share = own / self.seconds if self.seconds else 0.0
            out.append(f"  {own:8.3f} s {share:6.1%}  {name}")
        return out


def profile_call(fn: Callable[[], T], path: Path) -> tuple[T, ProfileReport]:
    """Run ``fn`` under pyinstrument (else cProfile) and write the report to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from pyinstrument import Profiler
    except ImportError:
        return _cprofile(fn, path)
    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        result = fn()
    finally:
        session = profiler.stop()
    if path.suffix in (".html", ".htm"):
        path.write_text(profiler.output_html())
    else:
        path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    own: dict[str, float] = {}
    files: dict[str, float] = {}
    root = session.root_frame()
    stack = [(root, "?")] if root is not None else []
    while stack:
        frame, caller = stack.pop()
        # C functions (sqlite, msgspec, numpy, the Bytewax runtime) count for their caller's file
        short = frame.file_path_short
        where = short if short and not short.startswith("<") else caller
        stack.extend((child, where) for child in frame.children)
        if frame.is_synthetic:
            continue
        name = f"{frame.function} ({short}:{frame.line_no})"
        own[name] = own.get(name, 0.0) + frame.total_self_time
        files[where] = files.get(where, 0.0) + frame.total_self_time
    top = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:TOP]
    by_file = sorted(files.items(), key=lambda kv: kv[1], reverse=True)[:TOP]
    return result, ProfileReport(path, "pyinstrument", session.duration, top, by_file=by_file)


def _cprofile(fn: Callable[[], T], path: Path) -> tuple[T, ProfileReport]:
    prof = cProfile.Profile()
    prof.enable()
    try:
        result = fn()
    finally:
        prof.disable()
    raw = path.with_name(path.name + ".prof")
    prof.dump_stats(str(raw))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    path.write_text(buf.getvalue())
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values())
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    top = [(f"{func} ({Path(file).name}:{line})", float(v[2])) for (file, line, func), v in ranked]
    return result, ProfileReport(path, "cProfile", float(total), top, [raw])
