"""Synthetic vendor quote/run files with known flaws, and their exact expected load.

:func:`generate_vendor_file` writes ``rows`` dealer quotes (``instrument, dealer, time,
bid, ask, bid_size, ask_size``) over ``days`` days, ``dealers`` dealers and a pool of
instruments (US CUSIPs with correct check digits, plus some non-North-American ISINs).
Each row writes its instrument in one *form*, chosen with the given rates:

- clean: the 9-character CUSIP, its 8-character form, lowercase, space-padded;
- ``isin_rate``: the ISIN (upper or lower case; US ISINs standardize to the CUSIP);
- ``mistyped_rate``: one digit changed: a 9-character CUSIP or an ISIN with a bad check
  digit (rejected), or an 8-character form that silently becomes another CUSIP (found
  only by the reference list: unmatched);
- ``invalid_rate``: truncated to 7 characters, empty, a ``-`` inside, or issuer-only.

``duplicate_rate`` of the rows are extra records of an existing (date, instrument,
dealer) at another time of the same day (10% of them at exactly the same time, so the
input order decides). ``bad_time_rate``/``missing_dealer_rate`` blank or garble those
fields. The file's rows are shuffled. The returned :class:`GroundTruth` is computed by
construction (forms know their status) and a lexsort, independently of the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ticktape.schemas.instruments.codes import cusip_check_digit, cusip_to_isin, isin_check_digit

DEALERS = ("JPM", "GS", "MS", "BARC", "CITI", "BAML", "DB", "UBS", "HSBC", "BNP", "RBC", "TD", "WFS", "NOM")
FORMS = (
    "cusip9", "cusip8", "lower", "padded", "isin", "isin_lower",
    "mistyped9", "mistyped_isin", "mistyped8", "trunc7", "dash", "issuer6", "empty",
)  # fmt: skip
_FORM = {name: i for i, name in enumerate(FORMS)}
STATUSES = ("valid", "fixed_check_digit", "issuer_only", "invalid_length", "invalid_char", "bad_check_digit")
_INVALID = ("invalid_length", "invalid_char", "bad_check_digit")
_DAY_NS = 86_400 * 10**9
_EPOCH_DAY = 19_724  # 2024-01-02


@dataclass(frozen=True)
class GroundTruth:
    """What loading the generated file must produce.

    ``survivors`` (sorted by date, instrument, dealer) has the loader's key and value
    columns. Counts are rows: ``rejected`` by reason, ``invalid`` by id status (rows with
    a bad id, whatever else is wrong with them), ``check_digit_added``/``isin_mapped``
    over all rows read, ``duplicates_resolved`` = accepted rows that lost to a more
    recent record of their (date, instrument, dealer).
    """

    path: Path
    rows: int
    survivors: pa.Table
    rejected: dict[str, int]
    invalid: dict[str, int]
    check_digit_added: int
    isin_mapped: int
    duplicates_resolved: int
    pool: list[str] = field(repr=False)

    def unmatched(self, reference: set[str]) -> set[str]:
        """Standard ids of surviving rows that are not in ``reference``."""
        return set(self.survivors.column("instrument").to_pylist()) - reference


def _mistype(text: str, rng: np.random.Generator, start: int, stop: int) -> str:
    """``text`` with one digit in ``[start, stop)`` replaced by another digit."""
    spots = [i for i in range(start, stop) if text[i].isdigit()]
    i = spots[int(rng.integers(len(spots)))]
    digit = str((int(text[i]) + int(rng.integers(1, 10))) % 10)
    return text[:i] + digit + text[i + 1 :]


def _pool(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct standard ids: 90% US CUSIPs (issuer digits), 10% XS ISINs."""
    alnum = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    out: set[str] = set()
    while len(out) < count:
        if rng.random() < 0.9:
            base = "".join(rng.choice(list("0123456789"), 5)) + "".join(rng.choice(list(alnum), 3))
            out.add(base + cusip_check_digit(base))
        else:
            base = "XS" + "".join(rng.choice(list("0123456789"), 9))
            out.add(base + isin_check_digit(base))
    return sorted(out)


class _Forms:
    """Raw text, standard id, status and flags of every (instrument, form), flattened."""

    def __init__(self, pool: list[str], rng: np.random.Generator) -> None:
        self.raw: list[str] = []
        self.std: list[str] = []
        self.status: list[str] = []
        self.fixed: list[bool] = []
        self.mapped: list[bool] = []
        bad4 = ["invalid_length", "invalid_char", "issuer_only", "missing_instrument"]
        for sid in pool:
            tail = [sid[:7], sid[:4] + "-" + sid[5:], sid[:6], ""]
            if len(sid) == 12:  # ISIN-only instrument: its CUSIP forms are ISIN forms too
                bad = _mistype(sid, rng, 2, 11)
                self.raw += [sid, sid, sid.lower(), f" {sid}  ", sid, sid.lower(), bad, bad, bad, *tail]
                self.std += [sid] * 6 + [""] * 7
                self.status += ["valid"] * 6 + ["bad_check_digit"] * 3 + bad4
                self.fixed += [False] * 13
                self.mapped += [False] * 13
                continue
            isin = cusip_to_isin(sid)
            typo8 = _mistype(sid, rng, 0, 8)[:8]
            self.raw += [sid, sid[:8], sid.lower(), f"  {sid} ", isin, isin.lower()]
            self.raw += [_mistype(sid, rng, 0, 8), _mistype(isin, rng, 2, 11), typo8, *tail]
            self.std += [sid] * 6 + ["", "", typo8 + cusip_check_digit(typo8)] + [""] * 4
            self.status += ["valid", "fixed_check_digit", "valid", "valid", "valid", "valid"]
            self.status += ["bad_check_digit", "bad_check_digit", "fixed_check_digit", *bad4]
            self.fixed += [False, True] + [False] * 6 + [True] + [False] * 4
            self.mapped += [False] * 4 + [True, True] + [False] * 7


def _choose_forms(rows: int, rng: np.random.Generator, rates: dict[str, float]) -> npt.NDArray[np.int64]:
    u = rng.random(rows)
    edges = np.cumsum([rates["invalid"], rates["mistyped"], rates["isin"]])
    groups: list[tuple[list[str], list[float]]] = [
        (["trunc7", "dash", "issuer6", "empty"], [0.25] * 4),
        (["mistyped9", "mistyped_isin", "mistyped8"], [0.5, 0.25, 0.25]),
        (["isin", "isin_lower"], [0.8, 0.2]),
        (["cusip9", "cusip8", "lower", "padded"], [0.7, 0.1, 0.1, 0.1]),
    ]
    group = np.searchsorted(edges, u, side="right")
    out = np.zeros(rows, np.int64)
    for g, (names, probs) in enumerate(groups):
        sel = group == g
        out[sel] = rng.choice([_FORM[n] for n in names], int(sel.sum()), p=probs)
    return out


def generate_vendor_file(
    path: str | Path,
    rows: int,
    *,
    seed: int = 7,
    invalid_rate: float = 0.02,
    mistyped_rate: float = 0.01,
    duplicate_rate: float = 0.1,
    isin_rate: float = 0.1,
    bad_time_rate: float = 0.0,
    missing_dealer_rate: float = 0.0,
    days: int = 10,
    dealers: int = 30,
    instruments: int = 0,
    format: Literal["csv", "parquet"] = "csv",
    names: dict[str, str] | None = None,
) -> GroundTruth:
    """Write the file (see the module docstring); ``names`` renames columns."""
    rng = np.random.default_rng(seed)
    dealer_names = [DEALERS[i % len(DEALERS)] + ("" if i < len(DEALERS) else str(i)) for i in range(dealers)]
    pool = _pool(instruments or max(40, 2 * rows // (days * dealers)), rng)
    forms = _Forms(pool, rng)
    n_dup = int(rows * duplicate_rate)
    n_key = rows - n_dup
    space = days * len(pool) * dealers
    if n_key > space:
        raise ValueError(
            f"{n_key} distinct keys do not fit {days} days x {len(pool)} instruments x {dealers} dealers"
        )
    keys = rng.choice(space, n_key, replace=False)
    parent = rng.integers(0, n_key, n_dup)
    keys = np.concatenate([keys, keys[parent]])
    day, rest = np.divmod(keys, len(pool) * dealers)
    inst, dealer = np.divmod(rest, dealers)
    tod = rng.integers(7 * 3600_000, 17 * 3600_000, rows) * 1_000_000  # ms resolution, in ns
    tie = np.flatnonzero(rng.random(n_dup) < 0.1)
    tod[n_key + tie] = tod[parent[tie]]
    time_ns = (day + _EPOCH_DAY) * _DAY_NS + tod
    rates = {"invalid": invalid_rate, "mistyped": mistyped_rate, "isin": isin_rate}
    form = _choose_forms(rows, rng, rates)
    bid = np.round(rng.normal(100, 8, rows), 3)
    table = {
        "form": inst * len(FORMS) + form,
        "dealer": dealer,
        "time": time_ns,
        "bid": bid,
        "ask": np.round(bid + rng.uniform(0.05, 1.0, rows), 3),
        "bid_size": rng.integers(1, 50, rows) * 100_000,
        "ask_size": rng.integers(1, 50, rows) * 100_000,
        "bad_time": rng.random(rows) < bad_time_rate,
        "no_dealer": rng.random(rows) < missing_dealer_rate,
    }
    order = rng.permutation(rows)
    cols = {k: v[order] for k, v in table.items()}
    truth = _truth(cols, forms, dealer_names)
    _write(Path(path), cols, forms.raw, dealer_names, format, names or {})
    return GroundTruth(path=Path(path), rows=rows, pool=pool, **truth)


def _truth(cols: dict[str, Any], forms: _Forms, dealers: list[str]) -> dict[str, Any]:
    form = cols["form"]
    reasons = ["", "missing_dealer", "bad_time", *STATUSES, "missing_instrument"]
    std_names, std_code = np.unique(np.asarray(forms.std), return_inverse=True)  # "" sorts first
    index = {r: i for i, r in enumerate(reasons)}
    status = np.array([index[s] for s in forms.status])[form]  # index into reasons
    std = std_code[form]
    reason = np.where(std > 0, 0, status)
    reason = np.where((reason == 0) & cols["no_dealer"], 1, reason)
    reason = np.where((reason == 0) & cols["bad_time"], 2, reason)
    ok = np.flatnonzero(reason == 0)
    day = cols["time"][ok] // _DAY_NS
    key = (day * len(std_names) + std[ok]) * len(dealers) + cols["dealer"][ok]
    order = np.lexsort((ok, cols["time"][ok], key))  # ties: the later row sorts last
    last = np.ones(len(order), bool)
    last[:-1] = key[order][1:] != key[order][:-1]
    keep = ok[order[last]]  # sorted by date, instrument, dealer
    survivors = pa.table(
        {
            "date": pa.array(cols["time"][keep] // _DAY_NS, pa.int32()).cast(pa.date32()),
            "instrument": pa.array(std_names[std[keep]]),
            "dealer": pa.array(np.asarray(dealers)[cols["dealer"][keep]]),
            "time": pa.array(cols["time"][keep], pa.timestamp("ns", "UTC")),
            **{k: pa.array(cols[k][keep]) for k in ("bid", "ask", "bid_size", "ask_size")},
        }
    )
    rejected = np.bincount(reason, minlength=len(reasons))
    invalid = np.bincount(status, minlength=len(reasons))
    return {
        "survivors": survivors,
        "rejected": {r: int(c) for r, c in zip(reasons, rejected, strict=True) if r and c},
        "invalid": {r: int(invalid[reasons.index(r)]) for r in _INVALID if invalid[reasons.index(r)]},
        "check_digit_added": int(np.asarray(forms.fixed)[form].sum()),
        "isin_mapped": int(np.asarray(forms.mapped)[form].sum()),
        "duplicates_resolved": len(ok) - len(keep),
    }


def _rfc3339_ms(ns: npt.NDArray[np.int64]) -> pa.Array:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of each time (built as a byte matrix: Arrow's and
    Python's formatting take seconds for millions of values)."""
    ms = ns // 1_000_000
    day, tod = np.divmod(ms, 86_400_000)
    dates = np.array([d.encode() for d in np.datetime_as_string(np.unique(day).astype("datetime64[D]"))])
    out = np.zeros((len(ns), 24), np.uint8)
    out[:, :10] = np.frombuffer(dates.tobytes(), np.uint8).reshape(-1, 10)[
        np.searchsorted(np.unique(day), day)
    ]
    out[:, 10:24] = np.frombuffer(b"T00:00:00.000Z", np.uint8)
    for col, value in ((11, tod // 3_600_000), (14, tod // 60_000 % 60), (17, tod // 1000 % 60)):
        out[:, col] += (value // 10).astype(np.uint8)
        out[:, col + 1] += (value % 10).astype(np.uint8)
    for col, div in ((20, 100), (21, 10), (22, 1)):
        out[:, col] += (tod % 1000 // div % 10).astype(np.uint8)
    offsets = np.arange(0, 24 * len(ns) + 1, 24, dtype=np.int32)
    return pa.StringArray.from_buffers(len(ns), pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))


def _write(
    path: Path, cols: dict[str, Any], raw: list[str], dealers: list[str], fmt: str, names: dict[str, str]
) -> None:
    instrument = pa.DictionaryArray.from_arrays(pa.array(cols["form"], pa.int32()), pa.array(raw))
    dealer = pa.DictionaryArray.from_arrays(pa.array(cols["dealer"], pa.int32()), pa.array(dealers))
    dealer = pc.if_else(pa.array(cols["no_dealer"]), pa.scalar(" ", pa.string()), dealer.cast(pa.string()))
    ts = pa.array(cols["time"] // 1_000_000, pa.timestamp("ms", "UTC"))
    bad = pa.array(cols["bad_time"])
    if fmt == "csv":
        text = _rfc3339_ms(cols["time"])
        n_bad = int(cols["bad_time"].sum())
        garbled = pa.array(["", "n/a", "2024-02-30T10:00:00Z"] * (n_bad // 3 + 1))[:n_bad]
        time: pa.Array = pc.replace_with_mask(text, bad, garbled)
    else:
        time = pc.if_else(bad, pa.scalar(None, ts.type), ts)
    data = {"instrument": instrument.cast(pa.string()), "dealer": dealer, "time": time}
    data |= {k: pa.array(cols[k]) for k in ("bid", "ask", "bid_size", "ask_size")}
    table = pa.table({names.get(k, k): v for k, v in data.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, compression="zstd")
