"""ticktape.flows.loader.load: generated vendor files load to exactly the expected survivors and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from ticktape.flows.loader.generate import GroundTruth, _Forms, _pool, generate_vendor_file
from ticktape.flows.loader.load import LoaderConfig, LoadReport, load_files
from ticktape.flows.loader.reference import read_reference
from ticktape.schemas.errors import InputError
from ticktape.schemas.instruments.codes import cusip_to_isin
from ticktape.schemas.instruments.vectorized import classify_id

KEY = ["date", "instrument", "dealer"]
COLUMNS = [*KEY, "time", "bid", "ask", "bid_size", "ask_size"]
DIRTY: dict[str, Any] = {
    "bad_time_rate": 0.01,
    "missing_dealer_rate": 0.01,
    "invalid_rate": 0.03,
    "mistyped_rate": 0.02,
}


Loaded = tuple[GroundTruth, Path, LoadReport]


def stored(root: Path, columns: list[str] = COLUMNS) -> pa.Table:
    """Every quote in the store, with the hive date, sorted by key."""
    table = ds.dataset(root / "quotes", format="parquet", partitioning="hive").to_table()
    types = {"date": pa.date32(), "instrument": pa.string(), "dealer": pa.string()}
    table = pa.table({c: table.column(c).cast(types[c]) if c in types else table.column(c) for c in columns})
    return table.sort_by([(k, "ascending") for k in KEY])


def expected(truth: GroundTruth) -> pa.Table:
    return truth.survivors.select(COLUMNS).sort_by([(k, "ascending") for k in KEY])


def check_report(report: LoadReport, truth: GroundTruth) -> None:
    assert report.rows_read == truth.rows
    assert report.rows_loaded == truth.survivors.num_rows
    assert report.duplicates_resolved == truth.duplicates_resolved
    assert report.rejected == truth.rejected
    assert {k: v.rows for k, v in report.invalid_ids.items()} == truth.invalid
    assert report.issuer_only.rows == truth.rejected.get("issuer_only", 0)
    assert report.standardized["check_digit_added"] == truth.check_digit_added
    assert report.standardized["isin_to_cusip"] == truth.isin_mapped
    assert report.balanced


@pytest.fixture(scope="module")
def csv_load(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    tmp = tmp_path_factory.mktemp("csv")
    truth = generate_vendor_file(tmp / "runs.csv", 30_000, seed=11, **DIRTY)
    report = load_files([truth.path], output=tmp / "store")
    return truth, tmp / "store", report


def test_generated_forms_agree_with_the_scalar_oracle() -> None:
    pool = _pool(60, np.random.default_rng(1))
    assert any(len(i) == 12 for i in pool)  # some ISIN-only instruments
    forms = _Forms(pool, np.random.default_rng(2))
    for raw, std, status in zip(forms.raw, forms.std, forms.status, strict=True):
        got = classify_id(raw)
        assert got.standard_id == std, raw
        assert got.status == status or (status == "missing_instrument" and raw == ""), raw


def test_csv_survivors_are_exactly_the_most_recent_records(csv_load: Loaded) -> None:
    truth, root, report = csv_load
    assert stored(root).equals(expected(truth))
    check_report(report, truth)
    flaws = (truth.rejected["bad_time"], truth.rejected["missing_dealer"], truth.invalid["bad_check_digit"])
    assert min(*flaws, truth.duplicates_resolved) > 0  # the file exercises every path


def test_csv_report_details(csv_load: Loaded) -> None:
    truth, root, report = csv_load
    bad = report.invalid_ids["bad_check_digit"]
    assert (len(bad.examples), bad.distinct > 0, report.unmatched, report.reference_ids) == (5, True, None, 0)
    assert all("expected check digit" in e for e in bad.examples)
    assert report.dates == sorted(set(report.dates)) == [f"2024-01-{d:02}" for d in range(2, 12)]
    doc = json.loads(report.to_json())
    assert (doc["rows_read"], doc["rejected"]) == (truth.rows, truth.rejected)
    manifest = json.loads((root / "_loads" / f"{report.batch}.json").read_text())
    assert sorted(manifest["files"]) == sorted(report.written)
    assert manifest["report"]["rows_loaded"] == report.rows_loaded


def test_rejected_rows_carry_reason_and_origin(csv_load: Loaded) -> None:
    truth, root, report = csv_load
    rejected = pq.read_table(root / "rejected" / f"part-{report.batch}.parquet")
    assert rejected.num_rows == report.rows_rejected
    counts = pc.value_counts(rejected.column("reason").cast(pa.string())).to_pylist()
    assert {c["values"]: c["counts"] for c in counts} == truth.rejected
    source = pa.csv.read_csv(truth.path, convert_options=pa.csv.ConvertOptions(column_types={"instrument": pa.string(), "time": pa.string(), "dealer": pa.string()}))  # fmt: skip
    rows = rejected.column("row").to_pylist()
    assert rejected.column("bid").to_pylist() == source.column("bid").take(rows).to_pylist()
    bad_check = rejected.filter(pc.equal(rejected.column("reason").cast(pa.string()), "bad_check_digit"))
    assert all(d.isdigit() for d in bad_check.column("expected_check_digit").to_pylist())


def test_summaries_add_up(csv_load: Loaded) -> None:
    _, root, report = csv_load
    inst = pq.read_table(root / "summary" / "daily_instrument" / f"part-{report.batch}.parquet")
    dealer = pq.read_table(root / "summary" / "daily_dealer" / f"part-{report.batch}.parquet")
    assert pc.sum(inst.column("dealers")).as_py() == report.rows_loaded
    assert pc.sum(dealer.column("instruments")).as_py() == report.rows_loaded
    assert pc.sum(dealer.column("superseded")).as_py() == report.duplicates_resolved
    quotes = stored(root)
    first = inst.slice(0, 1).to_pylist()[0]
    group = quotes.filter(pc.and_(pc.equal(quotes.column("date"), first["date"]), pc.equal(quotes.column("instrument"), first["instrument"])))  # fmt: skip
    assert first["dealers"] == group.num_rows
    assert first["bid_max"] == pc.max(group.column("bid")).as_py()
    assert first["bid_mean"] == pytest.approx(pc.mean(group.column("bid")).as_py())


def test_duckdb_views(csv_load: Loaded) -> None:
    import duckdb  # a dev dependency: the views are tested, not skipped

    _, root, report = csv_load
    assert report.views.startswith("duckdb:")
    con = duckdb.connect(str(root / "analytics.duckdb"), read_only=True)

    def one(sql: str) -> object:
        return con.execute(sql).fetchall()[0][0]

    try:
        assert one("SELECT count(*) FROM v_quotes") == report.rows_loaded
        assert one("SELECT sum(dealers) FROM v_daily_instrument") == report.rows_loaded
        assert one("SELECT sum(instruments) FROM v_daily_dealer") == report.rows_loaded
        assert one("SELECT count(*) FROM v_unmatched") == 0
        assert one("SELECT count(*) FROM v_rejected") == report.rows_rejected
        distinct = one("SELECT count(*) FROM (SELECT DISTINCT date, instrument FROM v_daily_instrument)")
        assert distinct == one("SELECT count(*) FROM v_daily_instrument")
    finally:
        con.close()


def test_parquet_input_with_renamed_columns(tmp_path: Path) -> None:
    names = {"instrument": "CUSIP", "dealer": "Dealer", "time": "Timestamp"}
    truth = generate_vendor_file(
        tmp_path / "r.parquet", 8_000, seed=3, format="parquet", names=names, **DIRTY
    )
    cfg = LoaderConfig(instrument="cusip", dealer="dealer", time="TIMESTAMP", views=False)  # case-insensitive
    report = load_files([truth.path], cfg, output=tmp_path / "store")
    assert stored(tmp_path / "store").equals(expected(truth))
    check_report(report, truth)
    assert report.views.startswith("none: disabled")


def test_reload_is_idempotent_and_drops_stale_dates(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    truth = generate_vendor_file(path, 5_000, seed=5, days=4)
    first = load_files([path], LoaderConfig(views=False), output=tmp_path / "s")
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "s").rglob("*.parquet"))
    contents = {p: pq.read_table(tmp_path / p) for p in files}
    again = load_files([path], LoaderConfig(views=False), output=tmp_path / "s")
    assert again.batch == first.batch
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "s").rglob("*.parquet")) == files
    assert all(pq.read_table(tmp_path / p).equals(t) for p, t in contents.items())
    assert stored(tmp_path / "s").equals(expected(truth))
    smaller = generate_vendor_file(path, 2_000, seed=6, days=2)  # the vendor corrected the file
    load_files([path], LoaderConfig(views=False), output=tmp_path / "s")
    assert len(list((tmp_path / "s" / "quotes").glob("date=*/*.parquet"))) == 2
    assert stored(tmp_path / "s").equals(expected(smaller))


def test_unmatched_against_a_reference(tmp_path: Path) -> None:
    truth = generate_vendor_file(tmp_path / "runs.csv", 10_000, seed=8, mistyped_rate=0.03)
    known = truth.pool[5:]  # five instruments the reference does not know
    lines = ["# reference list", "", "not-an-id"] + [cusip_to_isin(i) if len(i) == 9 and n % 2 else i for n, i in enumerate(known)]  # fmt: skip
    (tmp_path / "ref.txt").write_text("\n".join(lines))
    cfg = LoaderConfig(reference=str(tmp_path / "ref.txt"))
    report = load_files([truth.path], cfg, output=tmp_path / "s")
    want = truth.unmatched(set(known))
    assert report.unmatched is not None
    assert report.unmatched.distinct == len(want) > 5  # mistyped 8-character CUSIPs show up here
    assert (report.reference_ids, report.reference_invalid) == (len(known), 1)
    table = pq.read_table(tmp_path / "s" / "unmatched" / f"part-{report.batch}.parquet")
    assert set(table.column("instrument").to_pylist()) == want
    survivors = truth.survivors.column("instrument").to_pylist()
    assert report.unmatched.rows == sum(1 for i in survivors if i in want)
    csv_ref = tmp_path / "ref.csv"
    csv_ref.write_text("Name,CUSIP\n" + "\n".join(f"x,{i}" for i in known) + "\nx,037833100\n")
    again = load_files([truth.path], LoaderConfig(reference=str(csv_ref), reference_column="cusip"), output=tmp_path / "s")  # fmt: skip
    assert any(i.startswith("0") for i in known)  # leading zeros survive a CSV reference
    assert again.unmatched == report.unmatched
    assert again.reference_ids == len(known) + 1


def test_ties_and_order_across_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.jsonl"
    a.write_text(
        "instrument,dealer,time,bid\n"
        "037833100,GS,2024-01-02T10:00:00Z,1\n"
        "03783310,GS,2024-01-02T09:00:00Z,2\n"  # older, same key after standardization
        "us0378331005, GS ,2024-01-02T10:00:00Z,3\n"  # same time: later row wins
        "037833100,GS,2024-01-03 08:00:00,4\n"  # next day (no offset: UTC)
    )
    b.write_text(
        '{"instrument": "037833100", "dealer": "GS", "time": "2024-01-03T08:00:00+00:00", "bid": 5}\n'
    )
    report = load_files([a, b], LoaderConfig(views=False), output=tmp_path / "s")
    assert stored(tmp_path / "s", [*KEY, "bid"]).select(["date", "bid"]).to_pylist() == [
        {"date": pa.scalar(19724, pa.int32()).cast(pa.date32()).as_py(), "bid": 3},
        {"date": pa.scalar(19725, pa.int32()).cast(pa.date32()).as_py(), "bid": 5},
    ]
    assert report.duplicates_resolved == 3
    assert report.rows_rejected == 0
    assert report.standardized == {"check_digit_added": 1, "isin_to_cusip": 1, "case_or_space": 0}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"instrument": "CUSIP"}, "no column 'CUSIP' for instrument"),
        ({"values": ("bid", "nope")}, "no column 'nope' for values"),
        ({"time_unit": "ms"}, None),
    ],
)
def test_bad_column_mapping_is_a_clear_error(
    tmp_path: Path, setup: dict[str, object], message: str | None
) -> None:
    path = tmp_path / "x.csv"
    path.write_text("instrument,dealer,time,bid\n037833100,GS,2024-01-02T10:00:00Z,1\n")
    cfg = LoaderConfig().replace(**setup)
    if message is None:  # the reader typed the column as timestamps: used as they are
        assert load_files([path], cfg, output=tmp_path / "s").rows_loaded == 1
        return
    with pytest.raises(InputError, match=message) as err:
        load_files([path], cfg, output=tmp_path / "s")
    assert "available: instrument, dealer, time, bid" in str(err.value)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_files([tmp_path / "nope.csv"], output=tmp_path / "s")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(InputError, match="unknown file type"):
        load_files([tmp_path / "x.xlsx"], output=tmp_path / "s")
    with pytest.raises(InputError, match="no input files"):
        load_files([], output=tmp_path / "s")


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1_000), ("us", 10**6), ("ns", 10**9)])
def test_epoch_time_units(tmp_path: Path, unit: str, scale: int) -> None:
    path = tmp_path / "x.csv"
    t = 1_704_189_600  # 2024-01-02T10:00:00Z
    path.write_text(f"instrument,dealer,time,bid\n037833100,GS,{t * scale},1\n037833100,MS,{t * scale + 1},2\n037833100,JPM,oops,3\n")  # fmt: skip
    cfg = LoaderConfig().replace(time_unit=unit, views=False)
    report = load_files([path], cfg, output=tmp_path / "s")
    assert (report.rows_loaded, report.rejected) == (2, {"bad_time": 1})
    times = stored(tmp_path / "s", [*KEY, "time"]).column("time").cast(pa.int64()).to_pylist()
    assert sorted(times) == sorted([t * 10**9, t * 10**9 + 10**9 // scale])


def test_empty_and_fully_rejected_files(tmp_path: Path) -> None:
    empty, bad = tmp_path / "empty.csv", tmp_path / "bad.csv"
    empty.write_text("instrument,dealer,time,bid\n")
    bad.write_text(
        "instrument,dealer,time,bid\nbad,GS,2024-01-02T10:00:00Z,1\n037833100, ,2024-01-02T10:00:00Z,2\n"
    )
    report = load_files([empty], output=tmp_path / "a")
    assert (report.rows_read, report.rows_loaded, report.rejected) == (0, 0, {})
    report = load_files([bad], output=tmp_path / "b")
    assert (report.rejected, report.balanced, report.dates) == (
        {"invalid_length": 1, "missing_dealer": 1},
        True,
        [],
    )
    assert not (tmp_path / "b" / "quotes").exists()


def test_id_type_hint_accepts_one_form(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "instrument,dealer,time\n037833100,GS,2024-01-02T10:00:00Z\nUS5949181045,GS,2024-01-02T10:00:00Z\n"
    )
    only_cusips = load_files([path], LoaderConfig(id_type="cusip", views=False), output=tmp_path / "a")
    assert only_cusips.rejected == {"invalid_length": 1}
    only_isins = load_files([path], LoaderConfig(id_type="isin", views=False), output=tmp_path / "b")
    assert only_isins.rejected == {"invalid_length": 1}
    assert only_isins.standardized["isin_to_cusip"] == 1


def test_numeric_looking_reference_ids_keep_their_zeros(tmp_path: Path) -> None:
    (tmp_path / "ref.csv").write_text("cusip\n037833100\n594918104\n")
    ref = read_reference(tmp_path / "ref.csv", LoaderConfig(reference_column="CUSIP"))
    assert ref.ids.to_pylist() == ["037833100", "594918104"]
