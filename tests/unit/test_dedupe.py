"""ticktape.flows.steps.dedupe: the anti-replay window over numeric trade ids, gap maturation
with a reorder tolerance in ids and in event time, and the FIFO window over non-numeric ids."""

from __future__ import annotations

import copy
import itertools
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticktape.flows.steps.dedupe import BELOW_WINDOW, DUPLICATE, NEW, SPANS, STALE, KeyWindow, TradeWindow

Gaps = list[tuple[int, int]]


def feed(w: TradeWindow, ids: list[int], window: int, reorder: int, gaps: Gaps | None) -> list[int]:
    return [w.check(n, window, reorder, gaps) for n in ids]


def expand(gaps: Gaps) -> list[int]:
    """Every id of the inclusive ranges, in report order (repeats kept)."""
    out: list[int] = []
    for first, last in gaps:
        assert first <= last, f"empty or reversed range {(first, last)}"
        out.extend(range(first, last + 1))
    return out


# -- classification ----------------------------------------------------------------


def test_first_id_is_new_and_sets_the_high_water_mark() -> None:
    w = TradeWindow()
    assert (w.hwm, w.bits, w.matured) == (-1, 0, -1)
    assert w.check(100, 64, 8, []) == NEW
    assert (w.hwm, w.bits, w.matured) == (100, 1, 100)


def test_id_zero_is_a_valid_first_id() -> None:
    w = TradeWindow()
    assert w.check(0, 8, 2, []) == NEW
    assert w.check(0, 8, 2, []) == DUPLICATE
    assert w.check(1, 8, 2, []) == NEW


def test_in_order_ids_are_new_once_then_duplicates() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    assert feed(w, list(range(1, 21)), 32, 4, gaps) == [NEW] * 20
    assert feed(w, list(range(1, 21)), 32, 4, gaps) == [DUPLICATE] * 20
    w.flush(gaps)
    assert gaps == []


def test_out_of_order_id_inside_the_window_is_new_exactly_once() -> None:
    w = TradeWindow()
    assert feed(w, [10, 13, 12], 8, 4, None) == [NEW, NEW, NEW]
    assert w.check(11, 8, 4, None) == NEW
    assert w.check(11, 8, 4, None) == DUPLICATE
    assert w.check(12, 8, 4, None) == DUPLICATE
    assert w.hwm == 13


def test_ids_below_the_window_cannot_be_judged() -> None:
    w = TradeWindow()
    window = 8
    w.check(100, window, 2, None)
    # hwm - n == window - 1 is the oldest id the bitmap still remembers ...
    assert w.check(93, window, 2, None) == NEW
    assert w.check(93, window, 2, None) == DUPLICATE
    # ... one more and the id is outside: a replay or a very late trade, we cannot tell.
    assert w.check(92, window, 2, None) == BELOW_WINDOW
    assert w.check(92, window, 2, None) == BELOW_WINDOW
    assert w.check(1, window, 2, None) == BELOW_WINDOW
    # An id that fell out of the window because the high-water mark moved on.
    w.check(101, window, 2, None)
    assert w.check(93, window, 2, None) == BELOW_WINDOW
    assert w.check(94, window, 2, None) == NEW


def test_ids_below_the_first_id_are_new_while_inside_the_window() -> None:
    w = TradeWindow()
    assert feed(w, [50, 48, 49, 48, 42, 43], 8, 4, None) == [NEW, NEW, NEW, DUPLICATE, BELOW_WINDOW, NEW]


def test_bitmap_stays_bounded_by_the_window() -> None:
    w = TradeWindow()
    window = 16
    for n in [5, 3, 4, 100, 90, 99, 1000, 999, 1001, 1003]:
        w.check(n, window, 4, [])
        assert 0 < w.bits < 1 << window
        assert w.bits & 1, "bit 0 is the high-water mark itself"


# -- gaps --------------------------------------------------------------------------


def test_gap_matures_only_once_the_high_water_mark_is_reorder_past_it() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [1, 2, 3, 5, 6, 7], 64, 4, gaps)
    assert gaps == []  # 4 may still arrive: hwm 7 - reorder 4 = 3
    w.check(8, 64, 4, gaps)
    assert gaps == []  # 8 - 4 = 4: 4 is missing now, reported when the run of missing ids ends
    w.check(9, 64, 4, gaps)
    assert gaps == [(4, 4)]  # 5 matured and was seen: the run [4, 4] is complete
    w.check(10, 64, 4, gaps)
    assert gaps == [(4, 4)], "a gap is reported once"


def test_a_hole_of_several_ids_is_one_gap() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [*range(1, 11), *range(21, 60)], 64, 4, gaps)
    assert gaps == [(11, 20)]


def test_late_id_inside_the_reorder_tolerance_is_no_gap() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [1, 2, 4, 5, 6, 3, 7, 8, 9, 10], 64, 4, gaps)
    w.flush(gaps)
    assert gaps == []


def test_id_later_than_the_tolerance_is_a_gap_then_new_not_duplicate() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [1, 2, 4, 5, 6], 64, 2, gaps)
    assert gaps == [(3, 3)]
    assert w.check(3, 64, 2, gaps) == NEW  # late, but not a replay: still in the window
    assert w.check(3, 64, 2, gaps) == DUPLICATE
    w.flush(gaps)
    assert gaps == [(3, 3)], "the late id is not reported again"


def test_adjacent_missing_ids_make_one_range() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [1, 5, 6, 9, 20], 64, 1, gaps)
    w.flush(gaps)
    assert gaps == [(2, 4), (7, 8), (10, 19)]


def test_flush_reports_pending_gaps_up_to_the_high_water_mark() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [1, 2, 4, 7], 64, 16, gaps)
    assert gaps == []
    w.flush(gaps)
    assert gaps == [(3, 3), (5, 6)]
    w.flush(gaps)
    assert gaps == [(3, 3), (5, 6)], "flush is idempotent"
    # The stream continues after a flush: later gaps are still found, old ones not repeated.
    feed(w, [8, 10], 64, 16, gaps)
    w.flush(gaps)
    assert gaps == [(3, 3), (5, 6), (9, 9)]


def test_flush_of_an_empty_window_reports_nothing() -> None:
    gaps: Gaps = []
    TradeWindow().flush(gaps)
    assert gaps == []


def test_without_a_gap_list_no_gaps_are_tracked() -> None:
    w = TradeWindow()
    feed(w, [1, 50, 100], 256, 4, None)
    assert w.matured == 1  # non-contiguous venue: maturation never runs during check


def test_huge_jump_is_one_range_and_costs_no_loop_over_it() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    big = 10**15
    feed(w, [1, 2, 3], 4096, 256, gaps)
    assert w.check(big, 4096, 256, gaps) == NEW  # returns at once despite 1e15 missing ids
    assert gaps == []  # the hole is open until the id after it matures
    assert w.pending == 4
    assert w.bits == 1
    assert w.check(big - 1, 4096, 256, gaps) == NEW
    assert w.check(3, 4096, 256, gaps) == BELOW_WINDOW
    w.flush(gaps)
    assert gaps == [(4, big - 2)]  # one hole, one range (big - 1 arrived late but in time)
    assert sum(last - first + 1 for first, last in gaps) == big - 1 - 3 - 1


def test_jump_just_past_the_window_resets_the_bitmap() -> None:
    w = TradeWindow()
    window = 8
    feed(w, [1, 2, 3], window, 2, None)
    w.check(3 + window, window, 2, None)
    assert w.bits == 1
    assert w.check(3 + window - 1, window, 2, None) == NEW
    assert w.check(3, window, 2, None) == BELOW_WINDOW


def test_missing_ids_below_the_first_id_are_not_gaps() -> None:
    """The window starts at the first id seen: nothing before it is known to exist
    (a replay from an offset starts mid-stream), so an id missing below the first one
    is not reported, even when a smaller id arrives later."""
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [10, 7, 11, 12, 13, 14, 15], 64, 2, gaps)
    w.flush(gaps)
    assert gaps == []


# -- the main property -------------------------------------------------------------


@st.composite
def local_streams(draw: st.DrawFn) -> tuple[list[int], set[int], int, int]:
    """ids 1..N shuffled locally (each id at most ``reorder // 2`` positions from its
    place), a random subset deleted, some ids repeated later. Returns
    ``(feed, deleted, window, reorder)``."""
    n = draw(st.integers(1, 300))
    reorder = draw(st.integers(0, 40))
    k = reorder // 2
    # Sorting by position + a jitter in [0, k] moves every element at most k places.
    jitter = draw(st.lists(st.integers(0, k), min_size=n, max_size=n))
    order = sorted(range(1, n + 1), key=lambda i: (i + jitter[i - 1], i))
    assert all(abs(pos + 1 - ident) <= k for pos, ident in enumerate(order))
    deleted = set(draw(st.lists(st.sampled_from(order), max_size=n, unique=True))) if n > 1 else set()
    kept = [i for i in order if i not in deleted]
    stream = list(kept)
    # Repeats (replays / at-least-once delivery) of ids already delivered.
    for _ in range(draw(st.integers(0, 30)) if kept else 0):
        pos = draw(st.integers(0, len(stream) - 1))
        stream.insert(draw(st.integers(pos + 1, len(stream))), stream[pos])
    # The window must cover the reorder tolerance (the config enforces window >= reorder).
    low = max(reorder, 1)
    window = draw(st.one_of(st.just(max(n + 1, low)), st.integers(low, low + 64)))
    return stream, deleted, window, reorder


@given(local_streams())
def test_property_duplicates_and_gaps_are_exact(case: tuple[list[int], set[int], int, int]) -> None:
    stream, deleted, window, reorder = case
    w = TradeWindow()
    gaps: Gaps = []
    seen: set[int] = set()
    hwm = -1
    for n in stream:
        verdict = w.check(n, window, reorder, gaps)
        if n not in seen:
            # Local reordering stays within the window: every first occurrence is new.
            assert verdict == NEW, f"first occurrence of {n} classified {verdict}"
        elif hwm - n < window:
            assert verdict == DUPLICATE, f"repeat of {n} (hwm {hwm}) classified {verdict}"
        else:
            assert verdict == BELOW_WINDOW, f"repeat of {n} far below hwm {hwm} classified {verdict}"
        seen.add(n)
        hwm = max(hwm, n)
        assert 0 < w.bits < 1 << window
    w.flush(gaps)

    reported = expand(gaps)
    assert len(reported) == len(set(reported)), f"an id reported twice: {gaps}"
    if not stream:
        assert reported == []
        return
    # Gaps are known between the first id seen and the high-water mark; the deleted ids
    # are exactly the missing ones there (nothing seen is ever reported).
    first = stream[0]
    expected = {d for d in deleted if first < d < hwm}
    assert set(reported) == expected
    assert not set(reported) & seen
    # When the stream starts at its first id and ends at its last (the usual case),
    # every deleted id is reported.
    if first == 1 and hwm == max(seen | deleted):
        assert set(reported) == deleted
    # Ranges come out in increasing order.
    assert reported == sorted(reported)


@given(local_streams())
def test_property_window_large_enough_every_repeat_is_a_duplicate(
    case: tuple[list[int], set[int], int, int],
) -> None:
    stream, _, _, reorder = case
    window = max(stream, default=0) + 2
    w = TradeWindow()
    verdicts = [w.check(n, window, reorder, []) for n in stream]
    firsts: set[int] = set()
    for n, verdict in zip(stream, verdicts, strict=True):
        assert verdict == (DUPLICATE if n in firsts else NEW)
        firsts.add(n)
    assert verdicts.count(NEW) == len(set(stream))


@given(local_streams(), st.data())
def test_property_pickle_mid_stream_changes_nothing(
    case: tuple[list[int], set[int], int, int], data: st.DataObject
) -> None:
    stream, _, window, reorder = case
    cut = data.draw(st.integers(0, len(stream)))

    straight = TradeWindow()
    gaps_a: Gaps = []
    out_a = feed(straight, stream, window, reorder, gaps_a)
    straight.flush(gaps_a)

    first = TradeWindow()
    gaps_b: Gaps = []
    out_b = feed(first, stream[:cut], window, reorder, gaps_b)
    resumed = pickle.loads(pickle.dumps(first, protocol=pickle.HIGHEST_PROTOCOL))
    assert resumed.__getstate__() == first.__getstate__()
    out_b += feed(resumed, stream[cut:], window, reorder, gaps_b)
    resumed.flush(gaps_b)

    assert out_b == out_a
    assert gaps_b == gaps_a
    assert resumed.__getstate__() == straight.__getstate__()


def test_getstate_setstate_round_trip_and_copy() -> None:
    w = TradeWindow()
    feed(w, [3, 5, 9], 32, 2, [])
    state = w.__getstate__()
    assert state == (9, 0b101_0001, 7, 6)  # 6..7 missing and matured: the run is still open
    other = TradeWindow()
    other.__setstate__(state)
    assert (other.hwm, other.bits, other.matured, other.pending) == (9, 0b101_0001, 7, 6)
    clone = copy.deepcopy(w)
    assert clone.check(9, 32, 2, []) == DUPLICATE
    assert clone.check(8, 32, 2, []) == NEW
    assert w.check(8, 32, 2, []) == NEW, "the copy is independent"


# -- non-numeric ids ---------------------------------------------------------------


def test_key_window_new_then_duplicate() -> None:
    kw = KeyWindow()
    assert kw.check("a", 3) == NEW
    assert kw.check("b", 3) == NEW
    assert kw.check("a", 3) == DUPLICATE
    assert kw.check("b", 3) == DUPLICATE


def test_key_window_forgets_the_oldest_beyond_its_size() -> None:
    kw = KeyWindow()
    for key in "abcd":
        assert kw.check(key, 3) == NEW
    assert list(kw.seen) == ["b", "c", "d"]
    assert kw.check("a", 3) == NEW  # forgotten: seen as new again (bounded memory)
    assert list(kw.seen) == ["c", "d", "a"]
    assert kw.check("d", 3) == DUPLICATE
    # A duplicate does not refresh its place (first-in-first-out, not LRU).
    assert kw.check("e", 3) == NEW
    assert list(kw.seen) == ["d", "a", "e"]


@given(st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=2), max_size=200), st.integers(1, 20))
def test_property_key_window_matches_a_fifo_model(keys: list[str], window: int) -> None:
    kw = KeyWindow()
    model: list[str] = []
    for key in keys:
        expected = DUPLICATE if key in model else NEW
        if expected == NEW:
            model.append(key)
            del model[:-window]
        assert kw.check(key, window) == expected
        assert list(kw.seen) == model
        assert len(kw.seen) <= window


@pytest.mark.parametrize("keys", [[], ["x"], ["x", "y", "z"]])
def test_key_window_pickle_round_trip(keys: list[str]) -> None:
    kw = KeyWindow()
    for key in keys:
        kw.check(key, 10)
    back = pickle.loads(pickle.dumps(kw, protocol=pickle.HIGHEST_PROTOCOL))
    assert list(back.seen) == keys
    for key in keys:
        assert back.check(key, 10) == DUPLICATE
    assert back.check("new", 10) == NEW
    assert copy.deepcopy(back).check("new", 10) == DUPLICATE


def test_reorder_zero_reports_a_jump_on_the_next_id_but_never_the_arriving_id() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    feed(w, [1, 2, 3], 64, 0, gaps)
    assert gaps == [], "an id that is arriving is not missing"
    w.check(6, 64, 0, gaps)
    assert gaps == []  # 4..5 matured missing; the run ends when the next seen id matures
    w.check(7, 64, 0, gaps)
    assert gaps == [(4, 5)]
    w.flush(gaps)
    assert gaps == [(4, 5)]


# -- the time rule (reorder_time) ----------------------------------------------------------

S = 1_000_000_000
MINUTE = 60 * S


def timed(
    w: TradeWindow,
    arrivals: list[tuple[int, int]],
    gaps: Gaps,
    *,
    window: int = 4096,
    reorder: int = 4,
    reorder_time: int = MINUTE,
) -> list[int]:
    """Feed ``(id, event time)`` pairs; the event time is the tick's watermark."""
    return [w.check(n, window, reorder, gaps, 0, wmark, reorder_time) for n, wmark in arrivals]


def test_a_hole_needs_both_reorder_ids_and_reorder_time() -> None:
    """Ids alone (a burst of trades) do not make a hole a gap, nor does time alone (a
    quiet symbol): both must have moved past it."""
    w = TradeWindow()
    gaps: Gaps = []
    timed(w, [(1, 0), (2, 1 * S), (4, 2 * S)], gaps)  # 3 is missing from 2 s on
    timed(w, [(n, n * S) for n in range(5, 40)], gaps)  # 35 ids past it, 39 s later
    assert gaps == [], "reorder ids but not reorder_time: no gap yet"
    assert w.matured == 1, "no id has waited reorder_time yet"

    w = TradeWindow()
    gaps = []
    timed(w, [(1, 0), (2, 1 * S), (4, 2 * S), (5, 10 * MINUTE), (6, 11 * MINUTE)], gaps)
    assert gaps == [], "reorder_time but not reorder ids (hwm 6 - 4 < 3): no gap yet"
    timed(w, [(7, 12 * MINUTE), (8, 13 * MINUTE)], gaps)
    assert gaps == [(3, 3)], "both: 3 is a gap (reported once 4, seen, matures too)"


def test_a_hole_matures_between_reorder_time_and_a_span_later() -> None:
    """The moment ids above a hole were first seen is kept per span of
    ``reorder_time / SPANS``: the gap comes no earlier than ``reorder_time`` after it,
    and at most one span later."""
    for opened in (1 * S, 7 * S, 15 * S):  # where in its span the hole appears
        w = TradeWindow()
        gaps: Gaps = []
        timed(w, [(1, 0), (2, 1 * S), (4, opened)], gaps)
        first_report = None
        for n in range(5, 200):
            wmark = opened + (n - 4) * S
            timed(w, [(n, wmark)], gaps)
            if gaps and first_report is None:
                first_report = wmark
        assert gaps == [(3, 3)]
        assert first_report is not None
        assert MINUTE <= first_report - opened <= MINUTE + MINUTE // SPANS + 1 * S, first_report - opened


def test_a_hole_filled_before_it_matures_is_no_gap_one_filled_after_stays_reported() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    timed(w, [(1, 0), (2, 1 * S), (4, 2 * S), (6, 3 * S)], gaps)  # holes 3 and 5
    timed(w, [(n, n * S) for n in range(7, 30)], gaps)
    assert timed(w, [(3, 30 * S)], gaps) == [NEW]  # 28 s late: filled in time
    timed(w, [(n, n * 10 * S) for n in range(30, 40)], gaps)
    assert gaps == [(5, 5)], "3 was filled before it matured; 5 was not"
    assert timed(w, [(5, 400 * S)], gaps) == [NEW], "a late trade inside the window is accepted"
    timed(w, [(40, 500 * S)], gaps)
    w.flush(gaps)
    assert gaps == [(5, 5)], "a matured gap stays reported once, even when filled later"


def test_the_time_rule_reads_only_the_event_time_given() -> None:
    """Event time is the watermark the caller passes (a pure function of the partition's
    order): without it moving, the ids rule alone never matures a hole; the end of input
    still reports it."""
    w = TradeWindow()
    gaps: Gaps = []
    timed(w, [(1, 5 * S), (3, 5 * S), *((n, 5 * S) for n in range(4, 3000))], gaps)
    assert gaps == []
    w.flush(gaps)
    assert gaps == [(2, 2)]


def test_ids_about_to_leave_the_window_mature_at_once() -> None:
    """A busy symbol: more than ``window`` ids within ``reorder_time``. An id that leaves
    the bitmap could only come back as STALE, so its hole is reported then."""
    w = TradeWindow()
    gaps: Gaps = []
    timed(
        w, [(1, 0), (2, 0), *((n, n * 1_000_000) for n in range(4, 20))], gaps, window=16, reorder_time=MINUTE
    )
    assert gaps == []
    timed(w, [(20, 20_000_000)], gaps, window=16)  # 4 leaves the window: the run [3, 3] ends
    assert gaps == [(3, 3)]
    assert timed(w, [(3, 21_000_000)], gaps, window=16) == [STALE]
    assert 0 < w.bits < 1 << 16


def test_time_rule_state_stays_a_few_checkpoints_and_pickles_compactly() -> None:
    w = TradeWindow()
    gaps: Gaps = []
    most = 0
    for n in range(1, 20_000):
        if n % 97 == 0:
            continue  # a hole every 97 ids
        timed(w, [(n, n * S // 3)], gaps, reorder_time=MINUTE)
        most = max(most, len(w.ckpts))
    assert len(gaps) == 20_000 // 97 - 2  # the last ones are still inside reorder_time
    assert most <= 2 * (SPANS + 1), "at most SPANS + 1 (id, time) checkpoints per symbol"
    state = w.__getstate__()
    assert len(state) <= 8 + 2 * (SPANS + 1)
    assert all(type(v) is int for v in state)
    w.flush(gaps)
    assert w.ckpts == []
    assert len(gaps) == 20_000 // 97


def test_old_snapshots_without_the_time_rule_restore() -> None:
    w = TradeWindow()
    w.__setstate__((9, 0b101_0001, 7, 6))  # a snapshot from before reorder_time
    assert (w.tbound, w.span_end, w.ckpts) == (-1, 0, [])
    gaps: Gaps = []
    timed(w, [(10, 0), (11, 1 * S)], gaps, reorder=2)
    assert gaps == [], "the open run from 6 (8 still unsettled) now waits for reorder_time too"
    timed(w, [(12, 2 * MINUTE)], gaps, reorder=2)
    assert gaps == [(6, 8)]


@st.composite
def jittered_streams(draw: st.DrawFn) -> tuple[list[tuple[int, int]], set[int], int, int, int, int]:
    """ids 1..N traded at increasing event times, delivered in the order of their time
    plus a jitter of at most ``jitter`` either way (a clock skew, a slow path), some
    deleted (real holes), some repeated. The watermark is the running maximum of the
    delivered times. Returns ``(arrivals, deleted, jitter, window, reorder, reorder_time)``."""
    n = draw(st.integers(1, 200))
    steps = draw(st.lists(st.sampled_from([0, 1, 10, 100, 1_000]), min_size=n, max_size=n))
    jitter = draw(st.sampled_from([0, 5, 50, 300]))
    times = list(itertools.accumulate(steps))
    sent = [(t + draw(st.integers(-jitter, jitter)), i + 1) for i, t in enumerate(times)]
    deleted = set(draw(st.lists(st.integers(1, n), max_size=n // 3, unique=True)))
    order = [(t, i) for t, i in sorted(sent) if i not in deleted]
    for _ in range(draw(st.integers(0, 10)) if order else 0):  # replays, after the original
        pos = draw(st.integers(0, len(order) - 1))
        order.insert(draw(st.integers(pos + 1, len(order))), order[pos])
    arrivals, wmark = [], 0
    for t, i in order:
        wmark = max(wmark, t)
        arrivals.append((i, wmark))
    reorder = draw(st.integers(0, 12))
    window = draw(st.one_of(st.just(n + 2), st.integers(max(reorder, 1), max(reorder, 1) + 40)))
    reorder_time = draw(st.sampled_from([1, 4, 100, 601, 2_500]))
    return arrivals, deleted, jitter, window, reorder, reorder_time


@given(jittered_streams())
def test_property_a_hole_matures_exactly_when_both_rules_allow(
    case: tuple[list[tuple[int, int]], set[int], int, int, int, int],
) -> None:
    """A model of the rule. ``first_above[m]``: the event time at which an id above ``m``
    was first seen. Safety: an id that settles as missing had ``reorder`` ids and
    ``reorder_time`` past it, or was leaving the window. Liveness: once both hold (plus
    one span), the id is settled. The gaps are exactly the ids missing when they settled
    (a later fill does not take a gap back), and with ``reorder_time`` above twice the
    jitter and a window holding every id, exactly the deleted ids."""
    arrivals, deleted, jitter, window, reorder, rt = case
    span = max(rt // SPANS, 1)
    w = TradeWindow()
    gaps: Gaps = []
    first_above: dict[int, int] = {}
    hwm = -1
    seen: set[int] = set()
    settled_missing: set[int] = set()
    for n, wmark in arrivals:
        if hwm >= 0:
            for m in range(hwm, n):
                first_above.setdefault(m, wmark)
        old = w.matured
        verdict = w.check(n, window, reorder, gaps, 0, wmark, rt)
        if old >= 0:
            for m in range(old + 1, w.matured + 1):
                if m not in seen:
                    ripe = n - m >= max(reorder, 1) and wmark - first_above[m] >= rt
                    assert ripe or m <= n - window, (m, n, wmark, first_above[m])
                    settled_missing.add(m)
        if n > hwm >= 0:
            for m in range(w.matured + 1, n):
                overdue = n - m >= max(reorder, 1) and wmark >= first_above[m] + rt + span
                assert not overdue, (m, n, wmark, first_above[m])
        if verdict == NEW:
            seen.add(n)
        hwm = max(hwm, n)
    if hwm >= 0:
        settled_missing.update(m for m in range(w.matured + 1, hwm) if m not in seen)
    w.flush(gaps)
    reported = expand(gaps)
    assert len(reported) == len(set(reported)), "an id reported twice"
    assert reported == sorted(reported)
    assert set(reported) == settled_missing
    if rt > 2 * jitter and window > max(seen | deleted | {0}):
        first = arrivals[0][0] if arrivals else 0
        assert set(reported) == {d for d in deleted if first < d < hwm}


@given(jittered_streams(), st.data())
def test_property_pickle_mid_stream_with_the_time_rule_changes_nothing(
    case: tuple[list[tuple[int, int]], set[int], int, int, int, int], data: st.DataObject
) -> None:
    arrivals, _, _, window, reorder, rt = case
    cut = data.draw(st.integers(0, len(arrivals)))
    straight = TradeWindow()
    gaps_a: Gaps = []
    out_a = timed(straight, arrivals, gaps_a, window=window, reorder=reorder, reorder_time=rt)
    straight.flush(gaps_a)

    first = TradeWindow()
    gaps_b: Gaps = []
    out_b = timed(first, arrivals[:cut], gaps_b, window=window, reorder=reorder, reorder_time=rt)
    resumed = pickle.loads(pickle.dumps(first, protocol=pickle.HIGHEST_PROTOCOL))
    assert resumed.__getstate__() == first.__getstate__()
    out_b += timed(resumed, arrivals[cut:], gaps_b, window=window, reorder=reorder, reorder_time=rt)
    resumed.flush(gaps_b)
    assert (out_b, gaps_b) == (out_a, gaps_a)
