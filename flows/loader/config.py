"""``[loader]``: how batch history files (dealer quotes/runs) map onto the loader.

Kept free of heavy imports so :mod:`ticktape.flows.config` can embed it cheaply. The loader itself
is :mod:`ticktape.flows.loader.load`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

TimeUnit = Literal["s", "ms", "us", "ns", "rfc3339", "date"]
IdType = Literal["", "cusip", "isin"]


class LoaderConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[loader]``: column mapping, reference list and output of ``ticktape load``.

    - ``instrument``/``dealer``/``time``: column names in the vendor files (an exact
      match wins, else a unique case-insensitive one).
    - ``time_unit``: ``rfc3339`` text (an offset or ``Z``; text without one is UTC),
      ``date`` (``YYYY-MM-DD``: every record of a day ties, so the last one in the input
      wins), or epoch numbers in ``s``/``ms``/``us``/``ns``. Columns that already have
      a timestamp or date type (Parquet) are used as they are (naive ones as UTC).
    - ``values``: value columns to keep (``[]``: every other column).
    - ``id_type``: ``""`` decides CUSIP/ISIN by length; ``cusip`` or ``isin`` accept only
      that form (the other lengths become ``invalid_length``).
    - ``reference``: known instrument ids (a text file with one per line, or a CSV or
      Parquet file: column ``reference_column``, else the ``instrument`` column, else the
      first one); loaded ids that are not in it are reported as unmatched.
    - ``output``: the analytics store (a directory; see :mod:`ticktape.flows.loader.write`); empty:
      ``<data_dir>/analytics``.
    - ``views``: also (re)create DuckDB views in ``<output>/analytics.duckdb`` when the
      optional ``duckdb`` package is installed.
    """

    instrument: str = "instrument"
    dealer: str = "dealer"
    time: str = "time"
    time_unit: TimeUnit = "rfc3339"
    values: tuple[str, ...] = ()
    id_type: IdType = ""
    reference: str = ""
    reference_column: str = ""
    output: str = ""
    views: bool = True
    csv_delimiter: str = ","

    def __post_init__(self) -> None:
        for name in ("instrument", "dealer", "time"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name}: expected a column name, got an empty string")
        if len(self.csv_delimiter) != 1:
            raise ValueError(f"csv_delimiter: expected one character, got {self.csv_delimiter!r}")
        mapped = {self.instrument, self.dealer, self.time}
        if len(mapped) != 3:
            raise ValueError("instrument, dealer and time must be three different columns")
        if mapped & set(self.values):
            raise ValueError(
                f"values: must not repeat a key column ({', '.join(sorted(mapped & set(self.values)))})"
            )

    def replace(self, **changes: object) -> LoaderConfig:
        """A validated copy with ``changes`` (e.g. ``instrument="CUSIP"``) applied.

        Raises ``ValueError`` naming the offending field.
        """
        data = msgspec.to_builtins(self) | changes
        try:
            return msgspec.convert(data, LoaderConfig)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None
