"""Batch history loading: vendor quote/run files -> validated, deduplicated Parquet store.

``load_files(paths, cfg)`` reads CSV, Parquet or JSON-lines files (:mod:`ticktape.flows.loader.read`),
standardizes instrument ids (CUSIP 6/8/9 characters, ISIN, check digits; vectorized:
:mod:`ticktape.schemas.instruments.vectorized`), rejects unusable rows with a reason, keeps the most
recent record per (date, instrument, dealer) without averaging (:mod:`ticktape.flows.loader.rows`),
writes the survivors, the rejected rows and daily summaries as Parquet, idempotently
(:mod:`ticktape.flows.loader.write`), refreshes DuckDB views if DuckDB is installed
(:mod:`ticktape.flows.loader.views`) and returns a :class:`~ticktape.flows.loader.report.LoadReport`.

Guarantees: loading the same set of files again leaves the store exactly as one load
would (same file names, replaced atomically; stale files of that batch removed); the
report's row accounting balances (read = loaded + rejected + duplicates resolved).
Rejected rows are data, not errors: only unusable inputs (missing file, unknown column or
format) raise :class:`~ticktape.schemas.errors.InputError`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ticktape.flows.loader.config import LoaderConfig
from ticktape.flows.loader.read import TEXT_CODES, parse_times, read_file
from ticktape.flows.loader.reference import id_issue, read_reference, unmatched_table
from ticktape.flows.loader.report import IdIssue, LoadReport
from ticktape.flows.loader.rows import DAY_NS, REASONS, Resolved, encode_dealers, encode_ids, resolve
from ticktape.flows.loader.views import create_views
from ticktape.flows.loader.write import Store, batch_id, daily_dealer, daily_instrument
from ticktape.schemas.errors import InputError
from ticktape.schemas.instruments.vectorized import (
    BAD_CHECK,
    FIXED,
    INVALID_CHAR,
    INVALID_LENGTH,
    ISSUER_ONLY,
    VALID,
)

__all__ = ["LoadReport", "LoaderConfig", "load_files"]


def _values(tables: list[pa.Table]) -> pa.Table:
    """The value columns of all files, concatenated (types promoted, missing as null),
    one chunk per column."""
    parts = [t.drop_columns(["instrument", "dealer", "time"]) for t in tables]
    try:
        return pa.concat_tables(parts, promote_options="permissive").combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"the files' value columns do not fit together: {exc}") from None


def _quotes(res: Resolved, ns: npt.NDArray[np.int64], values: pa.Table) -> pa.Table:
    """The surviving records, sorted by (date, instrument, dealer)."""
    surv = res.survivors
    code = pa.array(res.instrument[surv].astype(np.int32))
    cols = {
        "instrument": pa.DictionaryArray.from_arrays(code, res.instruments),
        "dealer": pa.DictionaryArray.from_arrays(pa.array(res.dealer[surv].astype(np.int32)), res.dealers),
        "time": pa.array(ns[surv], pa.timestamp("ns", "UTC")),
    }
    taken = values.take(pa.array(surv))  # values has one chunk per column: a plain gather
    return pa.table({**cols, **{name: taken.column(name) for name in taken.column_names}})


def _chunks(tables: list[pa.Table], name: str) -> pa.ChunkedArray:
    return pa.chunked_array([c for t in tables for c in t.column(name).chunks], TEXT_CODES)


def _take_sorted(col: pa.ChunkedArray, rows: npt.NDArray[np.int64]) -> pa.ChunkedArray:
    """``col[rows]`` for ascending ``rows``, chunk by chunk (no concatenation of ``col``)."""
    bounds = np.cumsum([0, *(len(c) for c in col.chunks)])
    cut = np.searchsorted(rows, bounds)
    parts = [c.take(pa.array(rows[cut[i] : cut[i + 1]] - bounds[i])) for i, c in enumerate(col.chunks)]
    return pa.chunked_array(parts, col.type)


def _rejected(res: Resolved, tables: list[pa.Table], paths: list[Path], values: pa.Table) -> pa.Table:
    """The rejected rows with their reason, origin (file, 0-based data row) and raw text."""
    rows = np.flatnonzero(res.reason > 0)
    starts = np.cumsum([0, *(t.num_rows for t in tables)])
    source = np.searchsorted(starts, rows, side="right") - 1
    local = rows - starts[source]
    column = {k: _chunks(tables, k) for k in ("instrument", "dealer")}
    times = [
        _take_sorted(t.column("time"), local[source == f]).cast(pa.string()) for f, t in enumerate(tables)
    ]
    expected = res.verdicts.expected.take(pa.array(np.maximum(res.raw_index[rows], 0)))
    taken = values.take(pa.array(rows))
    cols = {
        "source": pa.DictionaryArray.from_arrays(
            pa.array(source.astype(np.int32)), pa.array([str(p) for p in paths])
        ),
        "row": pa.array(local),
        "reason": pa.DictionaryArray.from_arrays(pa.array(res.reason[rows]), pa.array(REASONS)),
        "expected_check_digit": expected.cast(pa.string()),
        "instrument": _take_sorted(column["instrument"], rows).cast(pa.string()),
        "dealer": _take_sorted(column["dealer"], rows).cast(pa.string()),
        "time": pa.chunked_array([c for t in times for c in t.chunks], pa.string()),
    }
    return pa.table({**cols, **{name: taken.column(name) for name in taken.column_names}})


def _id_report(res: Resolved) -> tuple[dict[str, IdIssue], IdIssue, dict[str, int]]:
    per_id = np.bincount(res.raw_index[res.raw_index >= 0], minlength=len(res.ids))
    status = res.verdicts.status_code
    blank = pc.equal(pc.utf8_trim_whitespace(res.ids), "").to_numpy(zero_copy_only=False)
    names = {INVALID_LENGTH: "invalid_length", INVALID_CHAR: "invalid_char", BAD_CHECK: "bad_check_digit"}
    invalid = {
        name: id_issue(res.ids, per_id, (status == code) & ~blank, res.verdicts.expected)
        for code, name in names.items()
    }
    changed = pc.not_equal(res.verdicts.standard_id, res.ids).to_numpy(zero_copy_only=False)
    from_isin = res.verdicts.from_isin
    standardized = {
        "check_digit_added": int(per_id[status == FIXED].sum()),
        "isin_to_cusip": int(per_id[from_isin].sum()),
        "case_or_space": int(per_id[(status == VALID) & ~from_isin & changed].sum()),
    }
    issuer = id_issue(res.ids, per_id, status == ISSUER_ONLY, res.verdicts.expected)
    return {k: v for k, v in invalid.items() if v.rows}, issuer, standardized


def load_files(
    paths: Sequence[str | Path], cfg: LoaderConfig | None = None, *, output: str | Path | None = None
) -> LoadReport:
    """Load ``paths`` into the store at ``output`` (default ``cfg.output``); see the
    module docstring. Raises :class:`InputError` for unusable inputs."""
    t0 = time.perf_counter()
    cfg = cfg or LoaderConfig()
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("no input files given")
    for path in files:
        if not path.exists():
            raise InputError(f"no such file: {path}")
    root = Path(output if output is not None else (cfg.output or "ticktape-data/analytics"))
    reference = read_reference(Path(cfg.reference), cfg) if cfg.reference else None

    tables = [read_file(p, cfg) for p in files]
    column = {k: _chunks(tables, k) for k in ("instrument", "dealer")}
    batch = batch_id(files)
    # Arrow and numpy release the GIL: ids, dealers and values are encoded while the
    # main thread parses times, and the Parquet files are written while it summarizes.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="loader") as pool, Store(root, batch) as store:
        ids = pool.submit(encode_ids, column["instrument"], cfg.id_type)
        dealers = pool.submit(encode_dealers, column["dealer"])
        values_f = pool.submit(_values, tables)
        parsed = [parse_times(t.column("time"), cfg.time_unit) for t in tables]
        ns = np.concatenate([p[0] for p in parsed])
        res = resolve(ids.result(), dealers.result(), ns, np.concatenate([p[1] for p in parsed]))
        values = values_f.result()

        quotes = _quotes(res, ns, values)
        dates = store.put_by_date("quotes", quotes, res.date)
        n_rejected = int(np.count_nonzero(res.reason))
        if n_rejected:
            store.put(store.part("rejected"), _rejected(res, tables, files, values))
        inst = res.instrument[res.survivors]
        dealer = res.dealer[res.survivors]
        store.put(
            store.part("summary", "daily_instrument"),
            daily_instrument(quotes, res.date, inst, values.column_names),
        )
        lost = res.superseded
        lost_day = ns[lost] // DAY_NS
        store.put(store.part("summary", "daily_dealer"), daily_dealer(res.dealers, res.date, dealer, ns[res.survivors], lost_day, res.dealer[lost]))  # fmt: skip
        unmatched = None
        if reference is not None:
            table, unmatched = unmatched_table(res, reference.ids)
            store.put(store.part("unmatched"), table)
        store.finish()

    invalid, issuer, standardized = _id_report(res)
    report = LoadReport(
        files=[str(p) for p in files],
        batch=batch,
        output=str(root),
        rows_read=len(ns),
        rows_loaded=len(res.survivors),
        rows_rejected=n_rejected,
        duplicates_resolved=len(lost),
        rejected={
            REASONS[i]: int(c)
            for i, c in enumerate(np.bincount(res.reason, minlength=len(REASONS)))
            if i and c
        },
        invalid_ids=invalid,
        issuer_only=issuer,
        standardized=standardized,
        instruments=int(np.count_nonzero(np.bincount(inst, minlength=1))),
        dealers=int(np.count_nonzero(np.bincount(dealer, minlength=1))),
        dates=dates,
        reference=cfg.reference,
        reference_ids=len(reference.ids) if reference else 0,
        reference_invalid=reference.invalid if reference else 0,
        unmatched=unmatched,
        written=store.written,
    )
    report.views = create_views(root) if cfg.views else "none: disabled ([loader] views = false)"
    report.elapsed_s = time.perf_counter() - t0
    report.rows_per_s = report.rows_read / report.elapsed_s if report.elapsed_s > 0 else 0.0
    store.write_manifest({"sources": [str(p.resolve()) for p in files], "report": report.to_dict()})
    return report
