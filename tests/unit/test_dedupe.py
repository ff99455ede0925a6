"""ticktape.flows.steps.dedupe: the anti-replay window over numeric trade ids, gap maturation
with a reorder tolerance, and the FIFO window over non-numeric ids."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticktape.flows.steps.dedupe import BELOW_WINDOW, DUPLICATE, NEW, KeyWindow, TradeWindow

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
