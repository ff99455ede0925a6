"""The batch loader's data-quality report: JSON and a readable table.

Row accounting (always balanced): ``rows_read == rows_loaded + rows_rejected +
duplicates_resolved``.

- ``rejected``: rejected rows by their first reason (see :mod:`ticktape.flows.loader.rows`).
- ``invalid_ids``: rows whose instrument id is ``invalid_length``, ``invalid_char`` or
  ``bad_check_digit`` (these rows are exactly the rejected rows of those reasons), with
  the number of distinct raw ids and the most frequent ones as examples (a bad check
  digit shows the expected one). ``issuer_only`` the same for 6-character CUSIPs.
- ``standardized``: rows read whose id the loader changed: ``check_digit_added``
  (8-character CUSIPs), ``isin_to_cusip`` (US/CA ISINs), ``case_or_space`` (otherwise
  valid ids that were lowercase or padded). Counted over all rows read.
- ``duplicates_resolved``: accepted rows dropped because a more recent record of the same
  (date, instrument, dealer) exists; nothing is averaged.
- ``unmatched``: loaded rows whose id is not in the reference list (``None`` without a
  reference); ``distinct`` ids, examples by rows.
- ``written``: files written, relative to ``output``; ``views``: the DuckDB views made,
  or why none.
"""

from __future__ import annotations

import msgspec
from rich.console import Console
from rich.table import Table

from ticktape.flows.terminal import add_row, markup_safe


class IdIssue(msgspec.Struct):
    """Rows with one kind of id problem, the distinct ids involved, and examples."""

    rows: int = 0
    distinct: int = 0
    examples: list[str] = msgspec.field(default_factory=list)


class LoadReport(msgspec.Struct):
    """What :func:`ticktape.flows.loader.load.load_files` did (see the module docstring)."""

    files: list[str]
    batch: str
    output: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    duplicates_resolved: int
    rejected: dict[str, int]
    invalid_ids: dict[str, IdIssue]
    issuer_only: IdIssue
    standardized: dict[str, int]
    instruments: int
    dealers: int
    dates: list[str]
    reference: str = ""
    reference_ids: int = 0
    reference_invalid: int = 0
    unmatched: IdIssue | None = None
    written: list[str] = msgspec.field(default_factory=list)
    views: str = ""
    elapsed_s: float = 0.0
    rows_per_s: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_rejected + self.duplicates_resolved

    def to_json(self) -> str:
        """The report as indented JSON."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2).decode()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = msgspec.to_builtins(self)
        return out

    def render(self, console: Console) -> None:
        """Print the report as rich tables."""
        summary = Table(
            title=f"load {markup_safe(self.batch)} -> {markup_safe(self.output)}",
            title_justify="left",
            show_header=False,
        )
        summary.add_column("what")
        summary.add_column("value", justify="right")

        def pct(n: int) -> str:
            return f"{n / self.rows_read:.2%}" if self.rows_read else "-"

        rows = [
            ("files", str(len(self.files))),
            ("rows read", f"{self.rows_read:,}"),
            ("rows loaded", f"{self.rows_loaded:,} ({pct(self.rows_loaded)})"),
            ("rows rejected", f"{self.rows_rejected:,} ({pct(self.rows_rejected)})"),
            ("duplicates resolved (older records dropped)", f"{self.duplicates_resolved:,}"),
            ("instruments / dealers / dates", f"{self.instruments:,} / {self.dealers:,} / {len(self.dates)}"),
            *((f"standardized: {k.replace('_', ' ')}", f"{v:,}") for k, v in self.standardized.items()),
            ("elapsed", f"{self.elapsed_s:.2f} s ({self.rows_per_s:,.0f} rows/s)"),
        ]
        if self.reference:
            rows.append(
                ("reference ids (invalid entries)", f"{self.reference_ids:,} ({self.reference_invalid:,})")
            )
        for what, value in rows:
            add_row(summary, what, value)
        console.print(summary)

        issues = Table(title="data quality", title_justify="left")
        for col in ("issue", "rows", "distinct ids", "examples"):
            issues.add_column(
                col, justify="right" if col in ("rows", "distinct ids") else "left", overflow="fold"
            )
        for reason, n in self.rejected.items():
            issue = self.invalid_ids.get(reason) or (self.issuer_only if reason == "issuer_only" else None)
            distinct = f"{issue.distinct:,}" if issue else ""
            examples = ", ".join(issue.examples) if issue else ""
            add_row(issues, f"rejected: {reason}", f"{n:,}", distinct, examples)
        if self.unmatched is not None:
            u = self.unmatched
            add_row(issues, "unmatched vs reference", f"{u.rows:,}", f"{u.distinct:,}", ", ".join(u.examples))
        add_row(issues, "duplicates resolved", f"{self.duplicates_resolved:,}", "", "most recent record kept")
        console.print(issues)
        console.print(f"balanced: {self.balanced}; views: {markup_safe(self.views)}")
        console.print(f"{len(self.written)} files written under {markup_safe(self.output)}")
