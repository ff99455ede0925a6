"""Reading vendor files for the batch loader: CSV, Parquet and JSON lines, a column
mapping, and tolerant time parsing.

`read_file` returns the file's rows as an Arrow table whose key columns are renamed
``instrument``, ``dealer`` and ``time`` (ids and dealers as dictionary-encoded text,
the time as read)
followed by the value columns in file order. A column named in the mapping that the
file lacks raises :class:`~ticktape.schemas.errors.InputError` naming it and listing the file's
columns. Formats come from the suffix: ``.csv``/``.txt`` (optionally ``.gz``/``.bz2``),
``.parquet``/``.pq`` (a file or a dataset directory), ``.jsonl``/``.ndjson``/``.json``.

:func:`parse_times` turns the time column into int64 ns since the epoch (UTC) and a mask
of the rows that parsed. Text is converted by Arrow's casts, one chunk at a time; a chunk
that fails is split (16 ways, down to single values) so only the unparseable rows are
lost, and a clean file costs one cast.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson

from ticktape.flows.loader.config import LoaderConfig
from ticktape.schemas.errors import InputError

KEYS: Final = ("instrument", "dealer", "time")
TEXT_CODES: Final = pa.dictionary(pa.int32(), pa.string())  # instrument and dealer columns
RESERVED: Final = frozenset({*KEYS, "date", "id_type"})
_EXP: Final = {"s": 9, "ms": 6, "us": 3, "ns": 0}
_SPLIT: Final = 16
Caster = Callable[[pa.Array], pa.Array]
Kinds = tuple[str, Caster, Caster]


def file_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name (or a directory: Parquet)."""
    if path.is_dir():
        return "parquet"
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2")]
    last = suffixes[-1] if suffixes else ""
    for fmt, known in (("csv", (".csv", ".txt")), ("parquet", (".parquet", ".pq")), ("jsonl", (".jsonl", ".ndjson", ".json"))):  # fmt: skip
        if last in known:
            return fmt
    raise InputError(f"{path}: unknown file type {last or '(none)'!r}; expected .csv, .parquet or .jsonl")


def csv_header(path: Path, delimiter: str) -> list[str]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        line = handle.readline()
    return next(csv.reader(io.StringIO(line), delimiter=delimiter), [])


def _match(available: list[str], wanted: str) -> str | None:
    if wanted in available:
        return wanted
    folded = [name for name in available if name.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def resolve(available: list[str], wanted: str, role: str, path: Path) -> str:
    """The file's name for column ``wanted``: exact, else a unique case-insensitive match."""
    found = _match(available, wanted)
    if found is None:
        raise _missing(available, [(wanted, role)], path)
    return found


def _missing(available: list[str], missing: list[tuple[str, str]], path: Path) -> InputError:
    what = ", ".join(f"{wanted!r} for {role}" for wanted, role in missing)
    hint = ",".join(f"{role}=COLUMN" for _, role in missing if role in KEYS)
    listing = ", ".join(available) or "(none)"
    return InputError(
        f"{path}: no column {what}"
        + (f" (set with --map {hint})" if hint else "")
        + f"; available: {listing}"
    )


def _columns(available: list[str], cfg: LoaderConfig, path: Path) -> tuple[list[str], list[str]]:
    """The file's key column names (instrument, dealer, time) and value column names."""
    wanted = [(getattr(cfg, k), k) for k in KEYS] + [(v, "values") for v in cfg.values]
    found = [_match(available, name) for name, _ in wanted]
    missing = [w for w, f in zip(wanted, found, strict=True) if f is None]
    if missing:
        raise _missing(available, missing, path)
    keys = [f for f in found[:3] if f is not None]
    values = (
        [f for f in found[3:] if f is not None] if cfg.values else [n for n in available if n not in keys]
    )
    clash = sorted(v for v in values if v in RESERVED)
    if clash:
        raise InputError(
            f"{path}: value column(s) {', '.join(clash)} clash with the loader's own columns; list the values to keep with --values"
        )
    return keys, values


def read_file(path: Path, cfg: LoaderConfig) -> pa.Table:
    """The rows of one vendor file (see the module docstring)."""
    if not path.exists():
        raise InputError(f"no such file: {path}")
    fmt = file_format(path)
    try:
        if fmt == "csv":
            keys, values = _columns(csv_header(path, cfg.csv_delimiter), cfg, path)
            types = dict.fromkeys(keys[:2], TEXT_CODES)  # the reader encodes them in parallel
            if cfg.time_unit in ("rfc3339", "date"):
                types[keys[2]] = pa.string()
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=8 << 20),
                parse_options=pacsv.ParseOptions(delimiter=cfg.csv_delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    include_columns=keys + values,
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=True,
                ),
            )
        elif fmt == "parquet":
            keys, values = _columns(ds.dataset(path, format="parquet").schema.names, cfg, path)
            options = ds.ParquetReadOptions(dictionary_columns=keys[:2])  # read them encoded
            dataset = ds.dataset(path, format=ds.ParquetFileFormat(read_options=options))
            table = dataset.to_table(columns=keys + values)
        else:
            table = pajson.read_json(path)
            keys, values = _columns(table.column_names, cfg, path)
            table = table.select(keys + values)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read {path} as {fmt}: {exc}") from None
    table = table.rename_columns([*KEYS, *values])
    for name in ("instrument", "dealer"):
        col = table.column(name)
        if col.type != TEXT_CODES:
            text = col.cast(pa.string()) if not pa.types.is_string(col.type) else col
            table = table.set_column(table.schema.get_field_index(name), name, pc.dictionary_encode(text))
    return table


def _aware(a: pa.Array) -> pa.Array:
    return pc.cast(a, pa.timestamp("ns", "UTC")).cast(pa.int64())


def _naive(a: pa.Array) -> pa.Array:
    return pc.cast(a, pa.timestamp("ns")).cast(pa.int64())


def _date(a: pa.Array) -> pa.Array:
    return pc.cast(pc.cast(a, pa.date32()), pa.timestamp("ns")).cast(pa.int64())


def _ints(scale: int) -> Caster:
    limit = np.iinfo(np.int64).max // scale

    def cast(a: pa.Array) -> pa.Array:
        ints = pc.cast(a, pa.int64())
        return pc.multiply(pc.if_else(pc.greater(pc.abs(ints), limit), None, ints), scale)

    return cast


def _floats(scale: int) -> Caster:
    def cast(a: pa.Array) -> pa.Array:
        ns = pc.round(pc.multiply(pc.cast(a, pa.float64()), float(scale)))
        finite = pc.and_(pc.is_finite(ns), pc.less(pc.abs(ns), 9.2e18))
        return pc.cast(pc.if_else(finite, ns, None), pa.int64())

    return cast


def _kinds(unit: str) -> Kinds:
    """A regex telling two kinds of text apart, and the casters of those that match it
    and of those that do not."""
    if unit in _EXP:
        scale = 10 ** _EXP[unit]
        return r"^\s*[+-]?\d+\s*$", _ints(scale), _floats(scale)
    if unit == "date":
        return r"^", _date, _date
    return r"([Zz]|[+-]\d\d:?\d\d)$", _aware, _naive


_OFFENDER: Final = re.compile(r"Failed to parse string: '(.*)' as a scalar of type", re.DOTALL)


def _offender(exc: Exception) -> str | None:
    match = _OFFENDER.search(str(exc))
    return match.group(1) if match else None


def _convert(arr: pa.Array, kinds: Kinds, first: int, tries: int = 8) -> pa.Array:
    """``arr`` as int64 ns, null where it cannot be read.

    ``kinds`` is (pattern, caster of text matching it, caster of the rest); ``first``
    says which caster to try on the whole chunk. Arrow's cast names the first value it
    cannot parse: if the other caster reads it, the chunk mixes both kinds and each value
    goes to its own caster; else every copy of it is nulled and the cast retried, up to
    ``tries`` times; then the chunk is split 16 ways, down to single values.
    """
    pattern, on_match, on_rest = kinds
    cast, other = (on_match, on_rest) if first == 0 else (on_rest, on_match)
    for _ in range(tries):
        try:
            return cast(arr)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            bad = _offender(exc)
            if bad is None:
                break
            if other is not cast and _parses(other, bad):
                match = pc.match_substring_regex(arr, pattern)
                matched = _convert(pc.if_else(match, arr, None), (pattern, on_match, on_match), 0)
                rest = _convert(pc.if_else(match, None, arr), (pattern, on_rest, on_rest), 0)
                return pc.if_else(match, matched, rest)
            same = pc.equal(arr, bad)
            if not pc.any(same).as_py():
                break
            arr = pc.if_else(same, None, arr)
    if len(arr) <= 1:
        return pa.nulls(len(arr), pa.int64())
    step = -(-len(arr) // _SPLIT)
    return pa.concat_arrays([_convert(arr.slice(i, step), kinds, first, 2) for i in range(0, len(arr), step)])


def _parses(cast: Caster, text: str) -> bool:
    try:
        return bool(cast(pa.array([text], pa.string()))[0].is_valid)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def parse_times(col: pa.ChunkedArray, unit: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """ns since the epoch and an ok mask for the time column (see the module docstring)."""
    typ = col.type
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        ns = pc.cast(col, pa.timestamp("ns", typ.tz if pa.types.is_timestamp(typ) else None)).cast(pa.int64())
    elif (
        pa.types.is_integer(typ)
        or pa.types.is_floating(typ)
        or pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
    ):
        if unit not in _EXP and not pa.types.is_string(typ) and not pa.types.is_large_string(typ):
            raise InputError(f"the time column holds numbers ({typ}); set time_unit to s, ms, us or ns")
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            col = col.cast(pa.string())
        kinds = _kinds(unit)
        head = pc.drop_null(col.slice(0, 1000))
        first = 0 if not len(head) or pc.match_substring_regex(head[0], kinds[0]).as_py() else 1
        ns = pa.chunked_array([_convert(c, kinds, first) for c in col.chunks], pa.int64())
    else:
        raise InputError(f"the time column has type {typ}, which is not a time")
    ok = ns.is_valid().to_numpy(zero_copy_only=False) if ns.null_count else np.ones(len(ns), np.bool_)
    return ns.fill_null(0).to_numpy(), ok
