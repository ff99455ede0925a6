"""Validation rules (docs/architecture.md, "Validation").

Stateless rules run in the source partition right after decoding (:class:`TickValidator`);
the two rules that need per-symbol history, the price-jump check and the z-score anomaly
flag, are small state machines here (:class:`PriceGuard`) used by the keyed step.
Every rejection is a :class:`~ticktape.schemas.errors.RejectError` naming the field, the
expectation and the value, with a :class:`~ticktape.schemas.records.DLCode`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import Duration, PositiveDuration
from ticktape.schemas.errors import RejectError
from ticktape.schemas.instruments.codes import standardize_cusip, standardize_isin
from ticktape.schemas.limits import (
    MAX_NOTIONAL,
    MAX_PRICE,
    MAX_SIZE,
    MAX_TRADE_ID_CHARS,
    MIN_PRICE,
    TS_MAX,
    TS_MIN,
)
from ticktape.schemas.records import SIDES, BookUpdate, DLCode, Level, Quote, Tick

DEFAULT_SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._]{0,23}(-[A-Z0-9][A-Z0-9._]{0,23})?$"
#: Venues are lowercase names (decoders lowercase them): no markup, path or control characters.
DEFAULT_VENUE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"
#: Known-good venues/symbols remembered per validator (further ones are checked every time).
_KNOWN_MAX = 100_000


class ValidationRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[validation]``: the rules and their limits (0 disables a numeric limit).

    ``venue_pattern``/``venue_allow_list`` check venues as ``symbol_pattern``/``allow_list``
    check symbols. ``max_ts_jump`` bounds how far one tick may move its partition's
    watermark on sources without a receive clock (files, backfills); see
    :class:`~ticktape.schemas.decoding.BatchDecoder`. The value limits of
    :mod:`ticktape.schemas.limits` are not configurable: they keep sums exact."""

    symbol_pattern: str = DEFAULT_SYMBOL_PATTERN
    allow_list: tuple[str, ...] = ()
    venue_pattern: str = DEFAULT_VENUE_PATTERN
    venue_allow_list: tuple[str, ...] = ()
    max_future: Duration = Duration.parse("5s")
    max_past: Duration = Duration.parse("10m")
    max_ts_jump: PositiveDuration = PositiveDuration.parse("7d")
    max_jump_pct: Annotated[float, between(0.0, 1e9)] = 20.0
    zscore_threshold: Annotated[float, between(0.0, 1e9)] = 8.0
    zscore_min_samples: Annotated[int, between(0, 1_000_000_000)] = 50
    check_instrument_ids: bool = True

    def __post_init__(self) -> None:
        for name in ("symbol_pattern", "venue_pattern"):
            try:
                re.compile(getattr(self, name))
            except re.error as exc:
                raise ValueError(
                    f"{name}: expected a regular expression, got {getattr(self, name)!r} ({exc})"
                ) from None


class TickValidator:
    """Stateless checks on one decoded tick.

    ``check_clock`` selects the reference for the future/past rule: the broker timestamp
    when the tick has one, else ``ts_recv`` in live mode; replays of files and backfills
    have no trustworthy reference and skip the rule (``check_clock=False``).
    """

    def __init__(self, rules: ValidationRules, *, check_clock: bool) -> None:
        self.rules = rules
        self.check_clock = check_clock
        self._pattern = re.compile(rules.symbol_pattern)
        self._allowed = frozenset(rules.allow_list)
        self._known_good: set[str] = set()
        self._venue_pattern = re.compile(rules.venue_pattern)
        self._venues_allowed = frozenset(rules.venue_allow_list)
        self._known_venues: set[str] = set()

    def check(self, tick: Tick) -> Tick:
        """Return the tick (possibly with a standardized instrument id) or raise.

        Value limits (:mod:`ticktape.schemas.limits`) are plain comparisons; venue and
        symbol patterns run once per distinct name (then a set lookup)."""
        price = tick.price
        if not MIN_PRICE <= price <= MAX_PRICE:  # also NaN and infinities
            raise RejectError(
                DLCode.BAD_PRICE, "price", f"a number from {MIN_PRICE:g} to {MAX_PRICE:g}", price
            )
        size = tick.size
        if not 0.0 <= size <= MAX_SIZE:
            raise RejectError(DLCode.BAD_SIZE, "size", f"a number from 0 to {MAX_SIZE:g}", size)
        if price * size > MAX_NOTIONAL:
            raise RejectError(
                DLCode.BAD_NOTIONAL, "size", f"price x size at most {MAX_NOTIONAL:g}", f"{price:g} x {size:g}"
            )
        if tick.side not in SIDES:
            raise RejectError(DLCode.BAD_SIDE, "side", "buy, sell or unknown", tick.side)
        ts = tick.ts_event
        if not TS_MIN <= ts < TS_MAX:
            raise RejectError(DLCode.TS_RANGE, "ts_event", "ns from 1970-01-01 to before 2100-01-01", ts)
        if tick.venue not in self._known_venues:
            self.check_venue(tick.venue)
        symbol = tick.symbol
        if symbol not in self._known_good:
            self.check_symbol(symbol)
        if len(tick.trade_id) > MAX_TRADE_ID_CHARS:
            raise RejectError(
                DLCode.BAD_TRADE_ID, "trade_id", f"at most {MAX_TRADE_ID_CHARS} characters", tick.trade_id
            )
        if self.check_clock:
            self._check_clock(tick)
        if tick.instrument_id and self.rules.check_instrument_ids:
            tick.instrument_id = _standard_instrument_id(tick.instrument_id)
        return tick

    def check_quote(self, q: Quote) -> Quote:
        """Return the quote or raise: prices and sizes within the value limits
        (:mod:`ticktape.schemas.limits`), bid below ask (a crossed or locked quote is
        ``CROSSED_BOOK``), event time in range, venue, symbol and clock rules."""
        for name, price in (("bid", q.bid), ("ask", q.ask)):
            if not MIN_PRICE <= price <= MAX_PRICE:  # also NaN and infinities
                raise RejectError(
                    DLCode.BAD_PRICE, name, f"a number from {MIN_PRICE:g} to {MAX_PRICE:g}", price
                )
        for name, size in (("bid_size", q.bid_size), ("ask_size", q.ask_size)):
            if not 0.0 <= size <= MAX_SIZE:
                raise RejectError(DLCode.BAD_SIZE, name, f"a number from 0 to {MAX_SIZE:g}", size)
        if q.bid >= q.ask:
            raise RejectError(DLCode.CROSSED_BOOK, "bid", f"below the ask {q.ask!r}", q.bid)
        if not TS_MIN <= q.ts_event < TS_MAX:
            raise RejectError(
                DLCode.TS_RANGE, "ts_event", "ns from 1970-01-01 to before 2100-01-01", q.ts_event
            )
        if q.venue not in self._known_venues:
            self.check_venue(q.venue)
        if q.symbol not in self._known_good:
            self.check_symbol(q.symbol)
        if self.check_clock:
            self._check_times(q.ts_event, q.ts_kafka or q.ts_recv)
        return q

    def check_book(self, u: BookUpdate) -> BookUpdate:
        """Return the update or raise: every level's price and size within the value
        limits (size 0 deletes), ``first_id <= last_id`` (``BAD_SEQUENCE``), event time in
        range, venue and symbol rules."""
        _check_levels("bids", u.bids)
        _check_levels("asks", u.asks)
        if u.first_id > u.last_id >= 0 or (u.first_id >= 0 > u.last_id):
            raise RejectError(DLCode.BAD_SEQUENCE, "first_id", f"at most last_id {u.last_id}", u.first_id)
        if not TS_MIN <= u.ts_event < TS_MAX:
            raise RejectError(
                DLCode.TS_RANGE, "ts_event", "ns from 1970-01-01 to before 2100-01-01", u.ts_event
            )
        if u.venue not in self._known_venues:
            self.check_venue(u.venue)
        if u.symbol not in self._known_good:
            self.check_symbol(u.symbol)
        return u

    def check_symbol(self, symbol: str) -> None:
        """Raise unless ``symbol`` passes the pattern / allow-list (whole-string match)."""
        if self._allowed:
            if symbol not in self._allowed:
                raise RejectError(DLCode.SYMBOL_NOT_ALLOWED, "symbol", "a symbol on the allow-list", symbol)
        elif not self._pattern.fullmatch(symbol):
            raise RejectError(
                DLCode.BAD_SYMBOL,
                "symbol",
                f"a symbol matching {self.rules.symbol_pattern}",
                symbol,
            )
        if len(self._known_good) < _KNOWN_MAX:
            self._known_good.add(symbol)

    def check_venue(self, venue: str) -> None:
        """Raise unless ``venue`` passes the venue pattern / allow-list."""
        if self._venues_allowed:
            if venue not in self._venues_allowed:
                raise RejectError(DLCode.VENUE_NOT_ALLOWED, "venue", "a venue on the allow-list", venue)
        elif not self._venue_pattern.fullmatch(venue):
            raise RejectError(
                DLCode.BAD_VENUE, "venue", f"a venue matching {self.rules.venue_pattern}", venue
            )
        if len(self._known_venues) < _KNOWN_MAX:
            self._known_venues.add(venue)

    def _check_clock(self, tick: Tick) -> None:
        ref = tick.ts_kafka or tick.ts_recv
        rules = self.rules  # the trade hot path: the limits are compared here, inline
        ts_event = tick.ts_event
        if (rules.max_future and ts_event - ref > rules.max_future) or (
            rules.max_past and ref - ts_event > rules.max_past
        ):
            self._check_times(ts_event, ref)

    def _check_times(self, ts_event: int, ref: int) -> None:
        rules = self.rules
        if rules.max_future and ts_event - ref > rules.max_future:
            ahead = (ts_event - ref) / 1e9
            raise RejectError(
                DLCode.TS_FUTURE,
                "ts_event",
                f"at most {rules.max_future.seconds:g}s ahead of the receive clock",
                f"{ahead:.3f}s ahead ({ts_event})",
            )
        if rules.max_past and ref - ts_event > rules.max_past:
            behind = (ref - ts_event) / 1e9
            raise RejectError(
                DLCode.TS_PAST,
                "ts_event",
                f"at most {rules.max_past.seconds:g}s behind the receive clock",
                f"{behind:.3f}s behind ({ts_event})",
            )


def _check_levels(side: str, levels: list[Level]) -> None:
    for i, (price, size) in enumerate(levels):
        if not MIN_PRICE <= price <= MAX_PRICE:  # also NaN and infinities
            raise RejectError(
                DLCode.BAD_PRICE, f"{side}[{i}].price", f"a number from {MIN_PRICE:g} to {MAX_PRICE:g}", price
            )
        if not 0.0 <= size <= MAX_SIZE:
            raise RejectError(DLCode.BAD_SIZE, f"{side}[{i}].size", f"a number from 0 to {MAX_SIZE:g}", size)


def _standard_instrument_id(raw: str) -> str:
    """Check and standardize a CUSIP (6/8/9 characters) or an ISIN (12)."""
    text = raw.strip().upper()
    if len(text) == 12:
        isin = standardize_isin(text)
        if not isin.ok:
            raise RejectError(DLCode.BAD_INSTRUMENT_ID, "isin", "a valid ISIN", f"{raw} ({isin.reason})")
        return isin.value
    cusip = standardize_cusip(text)
    if not cusip.ok or not cusip.value:
        reason = cusip.reason or "an issuer-only (6-character) CUSIP"
        raise RejectError(
            DLCode.BAD_INSTRUMENT_ID,
            "cusip",
            "a valid 8- or 9-character CUSIP",
            f"{raw} ({reason})",
        )
    return cusip.value


class PriceGuard:
    """Per-symbol price history: the jump rule (reject) and a Welford z-score (flag).

    State is four floats and an int, so it snapshots cheaply. ``observe`` must be called
    only for accepted ticks.
    """

    __slots__ = ("last", "m2", "mean", "n")

    def __init__(self) -> None:
        self.last = 0.0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def check_jump(self, price: float, max_jump_pct: float) -> None:
        last = self.last
        if max_jump_pct and last > 0.0:
            move = abs(price - last) / last * 100.0
            if move > max_jump_pct:
                raise RejectError(
                    DLCode.PRICE_JUMP,
                    "price",
                    f"within {max_jump_pct:g}% of the last accepted price {last:g}",
                    f"{price:g} ({move:.2f}% move)",
                )

    def zscore(self, price: float) -> float:
        """The z-score of the log return to ``price`` against the running statistics."""
        if self.n < 2 or self.last <= 0.0:
            return 0.0
        var = self.m2 / (self.n - 1)
        if var <= 0.0:
            return 0.0
        return (math.log(price / self.last) - self.mean) / math.sqrt(var)

    def observe(self, price: float, want_z: bool = False) -> float:
        """Record an accepted ``price``; with ``want_z``, return the z-score it had against
        the statistics before it (0.0 otherwise). The log return is computed once."""
        last = self.last
        self.last = price
        if last <= 0.0:
            return 0.0
        x = math.log(price / last)
        z = 0.0
        n = self.n
        if want_z and n >= 2:
            var = self.m2 / (n - 1)
            if var > 0.0:
                z = (x - self.mean) / math.sqrt(var)
        n += 1
        self.n = n
        delta = x - self.mean
        self.mean += delta / n
        self.m2 += delta * (x - self.mean)
        return z

    def __getstate__(self) -> tuple[float, int, float, float]:
        return (self.last, self.n, self.mean, self.m2)

    def __setstate__(self, state: tuple[float, int, float, float]) -> None:
        self.last, self.n, self.mean, self.m2 = state
