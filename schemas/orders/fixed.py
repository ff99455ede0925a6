"""Exact quantities and prices: fixed-point integers, never float sums.

A quantity, price or fee is an ``int`` of units of ``10**-9`` (:data:`SCALE`); a
notional or cost (price x quantity) is an ``int`` of units of ``10**-18``
(:data:`SCALE2`). Python integers do not overflow, so sums and products are exact; the
only rounding is :func:`div_round` (half to even), used where a division is unavoidable
(average prices, the cost basis removed by a partial close), and it is deterministic.

Text in and out: :func:`parse_fixed` reads a JSON number or a decimal string with at most
nine decimals (more is an error, never a silent rounding); :func:`format_fixed` writes
the shortest exact decimal text.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

SCALE: Final = 1_000_000_000
SCALE2: Final = SCALE * SCALE
DECIMALS: Final = 9


def div_round(a: int, b: int) -> int:
    """``a / b`` rounded half to even (``b != 0``)."""
    if b < 0:
        a, b = -a, -b
    q, r = divmod(a, b)
    twice = 2 * r
    if twice > b or (twice == b and q % 2):
        q += 1
    return q


def parse_fixed(value: object) -> int:
    """``value`` (int, float or decimal text) as units of 1e-9; ``ValueError`` when it is
    not a finite number or has more than nine decimals. Floats are read through their
    shortest repr (``0.1`` is exactly ``100000000``)."""
    if type(value) is str:  # the usual case: plain decimal text, no Decimal needed
        fast = _plain_decimal(value)
        if fast is not None:
            return fast
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value * SCALE
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (str, Decimal)):
        text = str(value).strip()
    else:
        raise ValueError(f"expected a number or decimal text, got {type(value).__name__}")
    if not text.isascii():
        raise ValueError(f"expected ASCII decimal text, got {text[:40]!r}")
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {text[:40]!r}") from None
    if not d.is_finite():
        raise ValueError(f"expected a finite number, got {text[:40]!r}")
    _sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    if exp < -DECIMALS:
        # trailing zeros beyond 9 decimals are fine: 1.5000000000
        scaled = d.scaleb(DECIMALS)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"expected at most {DECIMALS} decimals, got {text[:40]!r}")
        return int(scaled)
    if len(digits) + exp > 30:
        raise ValueError(f"expected at most 30 integer digits, got {text[:40]!r}")
    return int(d.scaleb(DECIMALS))


def _plain_decimal(text: str) -> int | None:
    """``[-+]digits[.digits]`` with at most nine decimals as units; None otherwise."""
    body = text.strip()
    neg = body[:1] == "-"
    if body[:1] in "-+":
        body = body[1:]
    whole, dot, frac = body.partition(".")
    if not body.isascii() or len(frac) > DECIMALS or len(whole) > 30:
        return None
    if not (whole.isdigit() or (not whole and frac)) or (dot and not frac.isdigit()):
        return None
    units = int(whole or "0") * SCALE + (int(frac.ljust(DECIMALS, "0")) if frac else 0)
    return -units if neg else units


def format_fixed(units: int, scale: int = SCALE) -> str:
    """The shortest exact decimal text of ``units / scale`` (``scale`` a power of ten)."""
    neg = units < 0
    q, r = divmod(abs(units), scale)
    if not r:
        text = str(q)
    else:
        width = len(str(scale)) - 1
        text = f"{q}.{str(r).rjust(width, '0').rstrip('0')}"
    return f"-{text}" if neg else text


def to_float(units: int, scale: int = SCALE) -> float:
    """``units / scale`` as the nearest float (for statistics and charts only)."""
    return units / scale


def from_float(value: float) -> int:
    """A market price or size (a float from a venue) as units of 1e-9, rounded half to
    even on its shortest repr: deterministic for the same float."""
    d = Decimal(repr(value)).scaleb(DECIMALS)
    return int(d.to_integral_value())
