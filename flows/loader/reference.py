"""The batch loader's reference list (known instrument ids) and id-issue summaries.

A reference file is either text (one id per line; blank lines and ``#`` comments are
skipped) or a CSV/Parquet file whose column ``reference_column`` (else the
``instrument`` column name, else the first column) holds the ids. Reference ids are
standardized like loaded ones, so a list of US ISINs matches CUSIP-keyed quotes; entries
that are not usable ids are counted as ``invalid`` and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from ticktape.flows.loader.config import LoaderConfig
from ticktape.flows.loader.read import csv_header
from ticktape.flows.loader.read import resolve as resolve_column
from ticktape.flows.loader.report import IdIssue
from ticktape.flows.loader.rows import Resolved
from ticktape.schemas.errors import InputError
from ticktape.schemas.instruments.vectorized import FIXED, VALID, standardize_ids

EXAMPLES = 5


@dataclass(frozen=True)
class Reference:
    ids: pa.Array  # distinct standard ids, sorted
    total: int  # entries read
    invalid: int  # entries that are not usable ids


def _column(table: pa.Table, cfg: LoaderConfig, path: Path) -> pa.ChunkedArray:
    names = table.column_names
    if cfg.reference_column:
        return table.column(resolve_column(names, cfg.reference_column, "reference_column", path))
    folded = [n for n in names if n.casefold() == cfg.instrument.casefold()]
    return table.column(folded[0] if folded else names[0])


def read_reference(path: Path, cfg: LoaderConfig) -> Reference:
    """The standardized ids of the reference file ``path``."""
    if not path.is_file() and not path.is_dir():
        raise InputError(f"no such reference file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":  # every column as text: 037833100 must keep its leading zero
            types = dict.fromkeys(csv_header(path, cfg.csv_delimiter), pa.string())
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=cfg.csv_delimiter),
                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
            )
            raw = _column(table, cfg, path)
        elif suffix in (".parquet", ".pq") or path.is_dir():
            table = ds.dataset(path, format="parquet").to_table()
            raw = _column(table, cfg, path).cast(pa.string())
        else:
            lines = [s.strip() for s in path.read_text(encoding="utf-8-sig").splitlines()]
            raw = pa.chunked_array([[s for s in lines if s and not s.startswith("#")]], pa.string())
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read reference file {path}: {exc}") from None
    raw = pc.drop_null(raw)
    verdict = standardize_ids(raw, expect=cfg.id_type)
    usable = (verdict.status_code == VALID) | (verdict.status_code == FIXED)
    ids = pc.unique(pc.filter(verdict.standard_id, pa.array(usable)))
    return Reference(ids.take(pc.sort_indices(ids)), len(raw), int((~usable).sum()))


def _label(text: str, rows: int, expected: str = "") -> str:
    shown = text if text == text.strip() and text.isprintable() else repr(text)
    return f"{shown} (x{rows}" + (f", expected check digit {expected})" if expected else ")")


def id_issue(
    ids: pa.Array, per_id: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_], expected: pa.Array
) -> IdIssue:
    """Rows, distinct ids and the most frequent examples among the ids in ``mask``."""
    which = np.flatnonzero(mask)
    if len(which) == 0:
        return IdIssue()
    top = which[np.lexsort((which, -per_id[which]))[:EXAMPLES]]
    examples = [_label(ids[i].as_py(), int(per_id[i]), expected[i].as_py()) for i in top.tolist()]
    return IdIssue(rows=int(per_id[which].sum()), distinct=len(which), examples=examples)


def unmatched_table(res: Resolved, reference: pa.Array) -> tuple[pa.Table, IdIssue]:
    """Loaded ids that are not in ``reference``: per id rows and first/last date."""
    known = pc.is_in(res.instruments, value_set=reference).to_numpy(zero_copy_only=False)
    code = res.instrument[res.survivors]
    n = len(res.instruments)
    rows = np.bincount(code, minlength=n)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, code, res.date)
    np.maximum.at(last, code, res.date)
    which = np.flatnonzero(~known & (rows > 0))
    table = pa.table(
        {
            "instrument": res.instruments.take(pa.array(which, pa.int64())),
            "rows": pa.array(rows[which], pa.int64()),
            "first_date": pa.array(first[which].astype(np.int32)).cast(pa.date32()),
            "last_date": pa.array(last[which].astype(np.int32)).cast(pa.date32()),
        }
    )
    no_digits = pa.array([""] * n, pa.string())
    issue = id_issue(res.instruments, rows, ~known & (rows > 0), no_digits)
    return table, issue
