"""Local L2 books: levels, bounded depth, Kraken checksums (on a real recorded Kraken
session), and the per-venue sync of :class:`BookKeeper` (snapshot + buffered diffs,
duplicates, gaps, checksum mismatches, crossed books)."""

from __future__ import annotations

import gzip
import json
import pickle
import zlib

from tests.support.data import VENUES
from ticktape.schemas.books.book import L2Book
from ticktape.schemas.books.checksum import kraken_checksum, kraken_checksum_of
from ticktape.schemas.books.keeper import ACCEPTED, DUPLICATE, BookKeeper, KeeperOut, KeeperSettings
from ticktape.schemas.records import BookUpdate, EventType

S = 1_000_000_000


def diff(
    first: int, last: int, bids=(), asks=(), *, ts: int = S, prev: int = -1, symbol: str = "BTC-USDT"
) -> BookUpdate:
    return BookUpdate(
        "binance", symbol, list(bids), list(asks), ts, ts, "ws:binance/0", last, 0, first, last, prev
    )


def snapshot(
    last: int, bids, asks, *, ts: int = S, venue: str = "binance", checksum: int = -1, texts=None
) -> BookUpdate:
    return BookUpdate(venue, "BTC-USDT", list(bids), list(asks), ts, ts, "ws:x/0", 0, 0, -1, last, -1, True,
                      checksum, texts)  # fmt: skip


def keeper(**settings: int) -> tuple[BookKeeper, KeeperOut]:
    return BookKeeper(KeeperSettings(**settings)), KeeperOut()


def test_levels_sort_best_first_and_zero_deletes() -> None:
    book = L2Book(depth=3)
    book.load([(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.0), (102.0, 2.0)], 10)
    book.apply([(99.5, 3.0), (98.0, 0.0), (97.0, 1.0)], [(100.5, 1.0), (103.0, 1.0)], 11)
    assert book.top(5) == (
        [(99.5, 3.0), (99.0, 1.0), (97.0, 1.0)],
        [(100.5, 1.0), (101.0, 1.0), (102.0, 2.0)],
    )
    assert book.best_bid() == (99.5, 3.0)
    assert book.last_id == 11
    assert not book.crossed()
    book.apply([(101.0, 1.0)], [], 12)
    assert book.crossed()


def test_depth_is_bounded_dropping_the_levels_farthest_from_the_touch() -> None:
    book = L2Book(depth=2)
    book.load([(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)], [(4.0, 1.0), (5.0, 1.0), (6.0, 1.0)], 1)
    assert book.levels() == ([(3.0, 1.0), (2.0, 1.0)], [(4.0, 1.0), (5.0, 1.0)])


def test_a_book_pickles_to_the_same_levels() -> None:
    book = L2Book(depth=5, keep_text=True)
    book.load([(1.5, 2.0)], [(2.5, 3.0)], 7, ([("1.50", "2.0")], [("2.50", "3.0")]))
    again = pickle.loads(pickle.dumps(book))
    assert again.levels() == book.levels()
    assert again.last_id == 7
    assert kraken_checksum(again) == kraken_checksum(book)


def test_kraken_checksum_of_the_documented_shape() -> None:
    # the text of each level without its decimal point and leading zeros, asks then bids
    asks = [("0.05005", "0.00000500"), ("0.05010", "0.00000500")]
    bids = [("0.05000", "0.00000500")]
    assert kraken_checksum_of(asks, bids) == zlib.crc32(b"5005500" + b"5010500" + b"5000500")


def test_every_checksum_of_a_real_recorded_kraken_session_matches() -> None:
    """4,269 book updates of 10 pairs (Kraken WS v1, 2021): our book and checksum agree
    with every checksum the venue sent."""
    books: dict[str, L2Book] = {}
    checked = mismatched = 0
    with gzip.open(VENUES / "recorded" / "kraken.ws.50.0.txt.gz", "rt") as f:
        for raw_line in f:
            line = raw_line.strip()
            if not line or "<->" in line or " <- " in line:
                continue
            doc = json.loads(line.partition(": ")[2], parse_float=str, parse_int=str)
            if not isinstance(doc, list):
                continue
            book = books.setdefault(doc[-1], L2Book(1000, keep_text=True))
            parts = doc[1:-2]
            bids, asks, checksum = [], [], None
            for part in parts:
                if "as" in part or "bs" in part:
                    lv_b, lv_a = part.get("bs", []), part.get("as", [])
                    book.load([(float(p), float(q)) for p, q, *_ in lv_b], [(float(p), float(q)) for p, q, *_ in lv_a], -1,
                              ([(p, q) for p, q, *_ in lv_b], [(p, q) for p, q, *_ in lv_a]))  # fmt: skip
                    continue
                bids += part.get("b", [])
                asks += part.get("a", [])
                checksum = part.get("c", checksum)
            if bids or asks:
                book.apply([(float(p), float(q)) for p, q, *_ in bids], [(float(p), float(q)) for p, q, *_ in asks], -1,
                           ([(p, q) for p, q, *_ in bids], [(p, q) for p, q, *_ in asks]))  # fmt: skip
            if checksum is not None:
                checked += 1
                mismatched += kraken_checksum(book) != int(checksum)
    assert checked == 4269
    assert mismatched == 0


def test_binance_sync_drops_diffs_the_snapshot_covers_and_applies_the_rest() -> None:
    k, out = keeper()
    assert k.apply(diff(100, 102, [(10.0, 1.0)]), out) == ACCEPTED  # buffered: no book yet
    assert k.apply(diff(103, 105, [(10.0, 2.0)]), out) == ACCEPTED
    assert k.take_resyncs() == [("binance", "BTC-USDT", "initial")]
    k.apply(snapshot(103, [(10.0, 9.0)], [(11.0, 1.0)]), out)  # covers 100..102 and part of 103..105
    st = k.state_of("binance", "BTC-USDT")
    assert st is not None
    assert st.synced
    assert st.book.last_id == 105
    assert st.book.best_bid() == (10.0, 2.0)
    resync = [f for f in out.facts if f.type == EventType.BOOK_RESYNC]
    assert (resync[0].detail["applied"], resync[0].detail["covered"]) == (1, 1)
    assert [s.reason for s in out.snapshots] == ["resync"]


def test_a_snapshot_older_than_the_buffered_diffs_asks_for_another() -> None:
    k, out = keeper()
    k.apply(diff(200, 201), out)
    k.take_resyncs()
    k.apply(snapshot(150, [(1.0, 1.0)], [(2.0, 1.0)]), out)  # 151..199 missing between them
    assert not k.state_of("binance", "BTC-USDT").synced  # type: ignore[union-attr]
    assert k.take_resyncs() == [("binance", "BTC-USDT", "stale_snapshot")]
    k.apply(snapshot(201, [(1.0, 2.0)], [(2.0, 1.0)]), out)
    assert k.state_of("binance", "BTC-USDT").synced  # type: ignore[union-attr]


def test_duplicates_and_gaps_after_sync() -> None:
    k, out = keeper()
    k.apply(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), out)
    assert k.apply(diff(11, 12, [(1.0, 2.0)]), out) == ACCEPTED
    assert k.apply(diff(11, 12, [(1.0, 2.0)]), out) == DUPLICATE  # a frame repeated after a reconnect
    assert k.apply(diff(20, 21, [(1.0, 3.0)]), out) == ACCEPTED  # 13..19 missing: buffered
    gap = [f for f in out.facts if f.type == EventType.BOOK_GAP]
    assert [(g.detail["reason"], g.detail["expected"], g.detail["got"]) for g in gap] == [
        ("sequence", 13, 20)
    ]
    assert k.take_resyncs() == [("binance", "BTC-USDT", "sequence")]
    assert k.state_of("binance", "BTC-USDT").book.best_bid() == (1.0, 2.0)  # type: ignore[union-attr]
    k.apply(snapshot(20, [(1.0, 5.0)], [(2.0, 1.0)]), out)
    assert k.state_of("binance", "BTC-USDT").book.best_bid() == (1.0, 3.0)  # type: ignore[union-attr]


def test_futures_pu_must_equal_the_previous_u() -> None:
    k, out = keeper()
    k.apply(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), out)
    k.apply(diff(9, 12, prev=8), out)  # the first diff after the snapshot straddles it
    assert k.apply(diff(13, 14, prev=12), out) == ACCEPTED
    k.apply(diff(16, 17, prev=15), out)
    assert [f.detail["reason"] for f in out.facts if f.type == EventType.BOOK_GAP] == ["sequence"]


def test_a_kraken_checksum_mismatch_loses_sync_until_the_next_snapshot() -> None:
    k, out = keeper()
    texts = ([("1.0", "1.0")], [("2.0", "1.0")])
    good = kraken_checksum_of([("2.0", "1.0")], [("1.0", "1.0")])
    k.apply(snapshot(-1, [(1.0, 1.0)], [(2.0, 1.0)], venue="kraken", checksum=good, texts=texts), out)
    update = BookUpdate("kraken", "BTC-USDT", [(1.0, 2.0)], [], S, S, "ws:kraken/0", 1, 0, checksum=12345,
                        texts=([("1.0", "2.0")], []))  # fmt: skip
    k.apply(update, out)
    gap = [f for f in out.facts if f.type == EventType.BOOK_GAP]
    assert [g.detail["reason"] for g in gap] == ["checksum"]
    assert k.take_resyncs() == [("kraken", "BTC-USDT", "checksum")]
    k.apply(update, out)  # no ids: skipped while out of sync
    k.apply(snapshot(-1, [(1.0, 1.0)], [(2.0, 1.0)], venue="kraken", checksum=good, texts=texts), out)
    resync = [f for f in out.facts if f.type == EventType.BOOK_RESYNC]
    assert resync[-1].detail["skipped"] == 1


def test_a_crossed_book_loses_sync() -> None:
    k, out = keeper()
    k.apply(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), out)
    k.apply(diff(11, 11, [(2.5, 1.0)]), out)
    assert [f.detail["reason"] for f in out.facts if f.type == EventType.BOOK_GAP] == ["crossed"]


def test_snapshots_every_interval_of_event_time_and_a_final_one() -> None:
    k, out = keeper(snapshot_every=10 * S, snapshot_levels=1)
    k.apply(snapshot(10, [(1.0, 1.0), (0.5, 1.0)], [(2.0, 1.0)], ts=5 * S), out)
    for i, ts in enumerate((6 * S, 9 * S, 10 * S, 15 * S, 21 * S)):
        k.apply(diff(11 + i, 11 + i, [(1.0, float(i + 2))], ts=ts), out)
    assert [(s.reason, s.ts_event) for s in out.snapshots] == [
        ("resync", 5 * S),
        ("interval", 10 * S),
        ("interval", 21 * S),
    ]
    assert out.snapshots[1].bids == [(1.0, 4.0)]  # snapshot_levels
    final = KeeperOut()
    k.final("ws:binance/0", 99, 0, final)
    assert [(s.reason, s.ts_event, s.bids) for s in final.snapshots] == [("final", 21 * S, [(1.0, 6.0)])]


def test_a_full_buffer_is_a_gap_fact_not_a_silent_drop() -> None:
    k, out = keeper(buffer=3)
    for i in range(5):
        k.apply(diff(10 + i, 10 + i), out)
    assert [f.detail["reason"] for f in out.facts] == ["buffer_full"]
    assert out.facts[0].detail["dropped"] == 4


def test_the_keeper_pickles_with_its_books() -> None:
    k, out = keeper()
    k.apply(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), out)
    again = pickle.loads(pickle.dumps(k))
    assert again.apply(diff(11, 11, [(1.0, 2.0)]), KeeperOut()) == ACCEPTED
    assert again.state_of("binance", "BTC-USDT").book.best_bid() == (1.0, 2.0)  # type: ignore[union-attr]
