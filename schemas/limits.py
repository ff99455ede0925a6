"""Value limits: the ranges inside which every number the job computes with stays exact.

A value outside them is hostile input (a dead letter with a :class:`~ticktape.schemas.records.DLCode`),
never a crash or a silently wrong sum. Checked by
:class:`~ticktape.schemas.validation.TickValidator` (per tick: comparisons only) and, column-wise,
by :func:`out_of_range` for the vectorized backfill path, so both paths accept the same trades.

Why these numbers:

* Candle volume and notional are exact integer sums of ``floor(x * 2**64)``
  (:mod:`ticktape.flows.steps.candles`); the vectorized path splits each value into 32-bit limbs
  held in int64 (:mod:`ticktape.flows.steps.candles_vector`). A per-trade notional below
  ``MAX_NOTIONAL`` (< 2**60) keeps every limb, and any window's sum of up to 2**31 trades,
  inside int64, and the float of every sum finite.
* ``MIN_PRICE`` keeps ``price * size * 2**64`` meaningful for ordinary sizes (a subnormal
  price such as 1e-320 truncates to 0 and would put the vwap outside low..high).
* Event times are int64 nanoseconds everywhere (Arrow, Parquet, Redis version keys, the
  candle engine's ``END_OF_TIME = 2**62``, about 2116): ``TS_MAX`` (2100-01-01) stays below.
* Numeric trade ids are ASCII digits with a value that fits int64 (at most 19 digits,
  ``<= 2**63 - 1``), as the vectorized ``trade_numbers`` reads them; other all-digit ids
  are text ids.
* Text that travels in every record (trade ids) and the raw bytes a dead letter carries
  are bounded, so no single message can exceed a Kafka producer's 1 MB record limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MIN_PRICE: Final = 1e-12
MAX_PRICE: Final = 1e15
MAX_SIZE: Final = 1e15
MAX_NOTIONAL: Final = 1e18
#: Event times: [1970-01-01, 2100-01-01) in ns since the epoch.
TS_MIN: Final = 0
TS_MAX: Final = 4_102_444_800 * 1_000_000_000
#: All-digit trade ids above this are text ids (no gap detection).
MAX_NUMERIC_ID: Final = 2**63 - 1
NUMERIC_ID_DIGITS: Final = len(str(MAX_NUMERIC_ID))
MAX_TRADE_ID_CHARS: Final = 128
#: Raw bytes kept in a dead letter; longer input is cut, with its size and SHA-256 kept.
MAX_DEAD_LETTER_RAW: Final = 16 * 1024


def out_of_range(price: npt.ArrayLike, size: npt.ArrayLike, ts: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Column-wise: a numpy bool array, True where a row breaks a value limit
    (``price``/``size`` float arrays, ``ts`` int64 ns). Same rules as the validator."""
    import numpy as np

    p, s, t = np.asarray(price), np.asarray(size), np.asarray(ts)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (
            (p >= MIN_PRICE) & (p <= MAX_PRICE) & (s >= 0.0) & (s <= MAX_SIZE)
            & (p * s <= MAX_NOTIONAL) & (t >= TS_MIN) & (t < TS_MAX)
        )  # fmt: skip
    out: npt.NDArray[np.bool_] = ~ok
    return out
