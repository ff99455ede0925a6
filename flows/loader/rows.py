"""The batch loader's row logic: standardize ids, reject rows, keep the most recent record.

Everything is column-wise. Instrument ids are dictionary-encoded first, so
:func:`~ticktape.schemas.instruments.vectorized.standardize_ids` runs once per *distinct* raw id and
its verdicts are gathered back to the rows. Dealers are stripped of surrounding
whitespace (case is kept).

A row is rejected for the first of these that applies (``REASONS``): a blank instrument
(``missing_instrument``), an id that is ``issuer_only``, ``invalid_length``,
``invalid_char`` or ``bad_check_digit``, a blank dealer (``missing_dealer``), a time that
cannot be read (``bad_time``). Every other row is *accepted*; of the accepted rows of each
(UTC date, standard instrument id, dealer) exactly one survives: the greatest time, and
among equal times the last one in the input (files in the order given, rows in file
order). Nothing is averaged; the losers are counted as duplicates resolved. Survivors come
out sorted by (date, instrument, dealer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ticktape.schemas.instruments.vectorized import FIXED, VALID, StandardizedIds, standardize_ids

REASONS: Final = (
    "", "missing_instrument", "issuer_only", "invalid_length", "invalid_char", "bad_check_digit",
    "missing_dealer", "bad_time",
)  # fmt: skip
_STATUS_REASON: Final = np.array([0, 0, 2, 3, 4, 5], np.int8)  # status code -> reason code
DAY_NS: Final = 86_400 * 10**9

Ints = npt.NDArray[np.int64]
Keys = npt.NDArray[np.signedinteger[Any]]  # int32 or int64


def _codes(col: pa.ChunkedArray) -> tuple[pa.Array, Ints]:
    """The distinct values of a (dictionary-encoded) text column and each row's index
    into them (-1: null)."""
    enc = col.unify_dictionaries() if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    if enc.num_chunks == 0:
        return pa.array([], pa.string()), np.zeros(0, np.int64)
    values = enc.chunk(0).dictionary
    idx = [c.indices.fill_null(-1).to_numpy() for c in enc.chunks]
    return values, np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64)


def _sorted_codes(values: pa.Array, idx: Ints, usable: npt.NDArray[np.bool_]) -> tuple[pa.Array, Ints]:
    """Re-code ``idx`` so codes follow the sorted order of the usable distinct values."""
    names = pc.unique(pc.filter(values, pa.array(usable)))
    names = names.take(pc.sort_indices(names))
    remap = pc.index_in(values, value_set=names).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return names, np.where(idx >= 0, remap[np.maximum(idx, 0)], -1)


@dataclass
class IdCodes:
    """Instrument ids of every row, encoded: see :func:`encode_ids`."""

    ids: pa.Array  # distinct raw instrument text
    verdicts: StandardizedIds  # one per distinct raw id
    raw_index: Ints  # row -> index into ids (-1: null)
    instruments: pa.Array  # sorted distinct usable standard ids
    instrument: Ints  # row -> index into instruments (-1: none)
    reason: npt.NDArray[np.int8]  # row -> REASONS index of its id (0: usable)


def encode_ids(instrument: pa.ChunkedArray, expect: str = "") -> IdCodes:
    """Standardize each distinct raw id once and map the verdicts back to the rows."""
    ids, raw_index = _codes(instrument)
    verdicts = standardize_ids(ids, expect=expect)  # type: ignore[arg-type]
    usable = (verdicts.status_code == VALID) | (verdicts.status_code == FIXED)
    names, std_code = _sorted_codes(verdicts.standard_id, np.arange(len(ids)), usable)
    blank = pc.equal(pc.utf8_trim_whitespace(ids), "").to_numpy(zero_copy_only=False)
    reason_of_id = np.where(blank, 1, _STATUS_REASON[verdicts.status_code]).astype(np.int8)
    has_id = raw_index >= 0
    safe = np.maximum(raw_index, 0)
    inst = np.where(has_id, std_code[safe], -1)
    reason = np.where(has_id, reason_of_id[safe], np.int8(1)).astype(np.int8)
    return IdCodes(ids, verdicts, raw_index, names, inst, reason)


def encode_dealers(dealer: pa.ChunkedArray) -> tuple[pa.Array, Ints]:
    """Sorted distinct dealers (surrounding whitespace stripped) and each row's index
    into them (-1: blank or null)."""
    values, raw = _codes(dealer)  # strip the distinct values only, then merge equal ones
    stripped = pc.utf8_trim_whitespace(values)
    present = pc.not_equal(stripped, "").to_numpy(zero_copy_only=False)
    names, code = _sorted_codes(stripped, np.arange(len(values)), present)
    return names, np.where(raw >= 0, code[np.maximum(raw, 0)], -1)


@dataclass
class Resolved(IdCodes):
    """The outcome of :func:`resolve` (``reason`` now covers dealer and time too)."""

    dealers: pa.Array  # sorted distinct dealers
    dealer: Ints  # row -> index into dealers (-1: blank)
    survivors: Ints  # row indices, sorted by (date, instrument, dealer)
    date: Ints  # per survivor: days since 1970-01-01
    superseded: Ints  # rows that lost to a more recent record


def resolve(
    ids: IdCodes, dealers: tuple[pa.Array, Ints], ns: Ints, time_ok: npt.NDArray[np.bool_]
) -> Resolved:
    """Reject and deduplicate (see the module docstring)."""
    names, dealer = dealers
    reason = ids.reason.copy()
    reason[(reason == 0) & (dealer < 0)] = 6
    reason[(reason == 0) & ~time_ok] = 7
    ok = np.flatnonzero(reason == 0)
    survivors, date = _latest(ok, ns[ok], ids.instrument[ok], dealer[ok], len(ids.instruments), len(names))
    won = np.zeros(len(reason), np.bool_)
    won[survivors] = True
    return Resolved(
        ids.ids, ids.verdicts, ids.raw_index, ids.instruments, ids.instrument, reason,
        names, dealer, survivors, date, ok[~won[ok]],
    )  # fmt: skip


def _latest(rows: Ints, ns: Ints, inst: Ints, dealer: Ints, n_inst: int, n_dealer: int) -> tuple[Ints, Ints]:
    """Per (date, instrument, dealer) of the given rows: the row with the greatest
    (time, row). Returns survivors sorted by that key, and their dates.

    Two passes of ``np.maximum.at`` over a group number: the greatest time per group,
    then the greatest position among the rows that have it. The group number is the
    mixed-radix key itself when its range is small (int32 when it fits), else the rank
    of the key among the distinct keys.
    """
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    day = ns // DAY_NS
    first_day = int(day.min())
    groups = (int(day.max()) - first_day + 1) * n_inst * n_dealer  # a Python int: no overflow
    if groups < 1 << 62:
        key: Keys = (day - first_day).astype(np.int32 if groups < 1 << 31 else np.int64)
        key *= n_inst
        key += inst
        key *= n_dealer
        key += dealer
    group: Keys
    if groups <= max(4 * len(rows), 1 << 20):  # dense: the key is the group number
        group, size = key, groups
    elif groups < 1 << 62:  # sparse: number the distinct keys (in key order)
        uniq, group = np.unique(key, return_inverse=True)
        size = len(uniq)
    else:  # the key would overflow int64: number the distinct (day, instrument, dealer)
        uniq, group = np.unique(np.stack([day, inst, dealer], axis=1), axis=0, return_inverse=True)
        size = len(uniq)
    best = np.full(size, np.iinfo(np.int64).min)
    np.maximum.at(best, group, ns)
    top = np.flatnonzero(ns == best[group])
    position = top.astype(np.int32) if len(rows) < 1 << 31 else top
    last = np.full(size, -1, position.dtype)
    np.maximum.at(last, group[top], position)
    winners = last[last >= 0]  # positions in ``rows``, in key order
    return rows[winners], day[winners]


__all__ = ["DAY_NS", "REASONS", "IdCodes", "Resolved", "encode_dealers", "encode_ids", "resolve"]
