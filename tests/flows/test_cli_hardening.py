"""The command line under bad values and the smaller defects of issue 13 (items 3, 12,
13 and 14): every mistake is one ``error:`` line naming the flag or key, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from tests.support import outputs
from tests.support.flows import config, run_collect
from ticktape.connectors.files.history import FileSource, FileSourceConfig
from ticktape.connectors.kafka.offsets import gap_event
from ticktape.connectors.memory.items import ItemsSource
from ticktape.flows.cli.main import main
from ticktape.flows.config import _masked
from ticktape.flows.reporting import accounting_table
from ticktape.infra.observability.metrics import RunStats
from ticktape.schemas.records import TickBatch

Cli = Callable[..., tuple[int, str, str]]
T0_MS = 1_704_067_200_000  # 2024-01-01


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``ticktape`` in this process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def trades(n: int = 300) -> dict[str, list[object]]:
    return {
        "timestamp": [T0_MS + i * 700 for i in range(n)],
        "id": list(range(1, n + 1)),
        "side": ["buy" if i % 3 else "sell" for i in range(n)],
        "price": [100.0 + (i % 17) * 0.5 for i in range(n)],
        "amount": [0.1 + (i % 5) for i in range(n)],
        "pair": ["XRP-ETH"] * n,
    }


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rows = trades()
    csv_path = tmp_path / "trades.csv"
    head = ["timestamp", "id", "side", "price", "amount", "pair"]
    csv_path.write_text(
        ",".join(head) + "\n" + "".join(",".join(str(rows[c][i]) for c in head) + "\n" for i in range(300))
    )
    nosym = tmp_path / "nosym.csv"
    nosym.write_text("timestamp,id,side,price,amount\n1704067200000,1,buy,10,1\n")
    parquet = tmp_path / "trades.parquet"
    pq.write_table(pa.table(rows), parquet)
    return {"csv": csv_path, "nosym": nosym, "parquet": parquet}


def file_run(data: Path, path: Path, *extra: str) -> list[str]:
    return [
        "run", "--data-dir", str(data), "--set", "metrics.enabled=false", "--set", "run.mode='replay'",
        "--set", "source.kind='file'", "--set", f"source.file.paths=['{path}']",
        "--set", "source.file.csv.symbol='pair'", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "-w", "-1"], "-w/--workers"),
        (["run", "-w", "0"], "-w/--workers"),
        (["replay", "-w", "0"], "-w/--workers"),
        (["run", "-i", "5", "-a", "127.0.0.1:7001"], "-i/--process-id"),
        (["run", "-i", "0", "-a", "127.0.0.1"], "-a/--addresses"),
        (["run", "-i", "0"], "--process-id and --addresses"),
        (["demo", "--rate", "-1", "--no-progress"], "--rate"),
        (["demo", "-w", "0", "--no-progress"], "-w/--workers"),
        (["demo", "--symbols", "0", "--no-progress"], "--symbols"),
        (["demo", "--duration", "0s", "--no-progress"], "--duration"),
        (["demo", "--metrics-port", "70000", "--no-progress"], "--metrics-port"),
        (["run", "--log-level", "LOUD"], "--log-level"),
        (["run", "--set", "run.batch_size=0"], "run.batch_size"),
        (["run", "--set", "run.batch_size=-5"], "run.batch_size"),
        (["run", "--set", "run.shards=0"], "run.shards"),
        (["run", "--set", "run.workers=0"], "run.workers"),
        (["run", "--set", "eventlog.partitions=0"], "eventlog.partitions"),
        (["run", "--set", "validation.symbol_pattern='(['"], "symbol_pattern"),
        (["run", "--set", "log.level='LOUD'"], "level"),
        (["run", "--set", "metrics.port=70000"], "metrics.port"),
        (["run", "--set", "source.file.format='xls'"], "source.file.format"),
        (["cache", "get", ""], "SYMBOL"),
    ],
)
def test_bad_values_are_one_error_line_naming_the_flag_or_key(cli, tmp_path, args, named):
    """Issue 13 item 3: these hung, panicked in Rust, printed tracebacks or silently
    processed nothing."""
    code, _, err = cli(*args, "--data-dir", str(tmp_path / "data"))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert named in lines[0]


def test_a_data_dir_that_is_a_file_is_refused(cli, tmp_path):
    afile = tmp_path / "plain"
    afile.write_text("x")
    code, _, err = cli("run", "--data-dir", str(afile))
    assert code == 2
    assert err.startswith("error: --data-dir: ")
    assert "is not a directory" in err


def test_history_files_without_a_symbol_fail_before_the_flow(cli, tmp_path, files):
    for args in (
        ["run", "--data-dir", str(tmp_path / "r"), "--set", "source.kind='file'",
         "--set", f"source.file.paths=['{files['nosym']}']", "--set", "metrics.enabled=false"],
        ["demo", "--file", str(files["nosym"]), "--data-dir", str(tmp_path / "d"), "--no-progress"],
    ):  # fmt: skip
        code, _, err = cli(*args)
        assert code == 2, err
        assert err.strip().splitlines() == [err.strip()]  # nothing started, nothing else said
        assert err.startswith("error: ")
        assert "no symbol" in err


def test_run_reads_parquet_history_like_the_same_rows_as_csv(cli, tmp_path, files):
    """Issue 13 item 13: `run` could not read Parquet history (backfill could)."""
    for name in ("csv", "parquet"):
        code, out, err = cli(*file_run(tmp_path / name, files[name]))
        assert code == 0, err
        assert "accounting balanced: True" in out
    from_parquet, from_csv = outputs.candles(tmp_path / "parquet"), outputs.candles(tmp_path / "csv")
    assert from_parquet
    assert [c[1:] for c in from_parquet] == [c[1:] for c in from_csv]  # the venue: "file" vs "binance"
    report = json.loads(next((tmp_path / "parquet" / "reports").glob("run-*.json")).read_text())
    assert report["accounting"]["total"]["accepted"] == 300


def test_backfill_uses_the_configured_csv_mapping(cli, tmp_path):
    """Issue 13 item 13: `backfill` ignored [source.file.csv]."""
    path = tmp_path / "custom.csv"
    path.write_text(
        "when,qty,px,tid\n" + "".join(f"{T0_MS + i * 500},1.5,{10 + i % 3},{i + 1}\n" for i in range(200))
    )
    cfg = tmp_path / "bf.toml"
    cfg.write_text(
        '[source.file]\nsymbol = "ABC-USD"\n[source.file.csv]\ntimestamp = "when"\nsize = "qty"\n'
        'price = "px"\ntrade_id = "tid"\nside = ""\n[metrics]\nenabled = false\n'
    )
    code, _, err = cli(
        "backfill", "-c", str(cfg), "--data-dir", str(tmp_path / "data"), "--source", str(path)
    )
    assert code == 0, err
    candles = outputs.candles(tmp_path / "data")
    assert {c[1] for c in candles} == {"ABC-USD"}
    assert sum(c[12] for c in candles if c[2] == 60) == 200  # every row in a 1m candle


def test_config_show_and_check_never_take_or_print_a_secret(cli, tmp_path):
    """Issue 13 item 12: `config show`/`check` accepted and printed `sasl.password` from
    a file (`run` refused it)."""
    cfg = tmp_path / "secret.toml"
    for section in ("outputs.kafka.producer", "source.kafka.consumer"):
        cfg.write_text(f'[{section}]\n"sasl.password" = "hunter2"\n')
        for command in ("show", "check"):
            code, out, err = cli("config", command, "-c", str(cfg))
            assert code == 2, (section, command)
            assert "TICKTAPE_KAFKA_SASL_PASSWORD" in err
            assert "hunter2" not in out + err
    masked = _masked({"producer": {"sasl.password": "x", "linger.ms": 5}, "url": "redis://u:pw@h:6379/0"})
    assert masked == {"producer": {"sasl.password": "***", "linger.ms": 5}, "url": "redis://u:***@h:6379/0"}


def test_config_check_takes_the_file_as_an_argument(cli, tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[run]\nshards = 8\n")
    bad.write_text("[run]\nshards = 0\n")
    assert cli("config", "check", str(good))[:2] == (0, "ok\n")
    code, _, err = cli("config", "check", str(bad))
    assert code == 2
    assert "run.shards" in err


def test_stored_outputs_commands_explain_what_is_missing(cli, tmp_path, files):
    """Issue 13 item 14: `candles NOPE` on a missing data dir printed an empty table and
    exit 0; `cache get` assumed venue `synthetic`."""
    code, _, err = cli("candles", "NOPE", "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2
    assert "no candle store" in err
    data = tmp_path / "data"
    assert cli(*file_run(data, files["csv"]))[0] == 0
    code, out, err = cli("cache", "get", "XRP-ETH", "--data-dir", str(data))
    assert code == 0, err
    assert json.loads(out)["key"] == "price/binance/XRP-ETH"
    code, _, err = cli("cache", "get", "NOPE-USD", "--data-dir", str(data))
    assert code == 2
    assert "venues in the cache: 'binance'" in err


def test_events_query_json_names_the_fields_of_candles_and_prices(cli, tmp_path, files):
    """Issue 13 item 14: candle events in `events query --json` were positional arrays."""
    data = tmp_path / "data"
    assert cli(*file_run(data, files["csv"]))[0] == 0
    for kind, field in (("CandleClosed", "vwap"), ("PriceUpdated", "price")):
        code, out, err = cli(
            "events", "query", "--data-dir", str(data), "--type", kind, "--limit", "3", "--json"
        )
        assert code == 0, err
        docs = [json.loads(line) for line in out.splitlines() if '"payload"' in line]
        assert docs
        assert all(isinstance(d["payload"], dict) and field in d["payload"] for d in docs)


def test_piped_tables_are_not_cut_at_80_columns(tmp_path, files):
    """Issue 13 item 14: piped output was cut to 80 columns (paths split over lines)."""
    data = tmp_path / ("a-long-directory-name-" * 4) / "data"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", *file_run(data, files["csv"])],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = next((data / "reports").glob("run-*.json"))
    assert any(str(report) in line for line in result.stdout.splitlines())


def test_offset_gaps_from_the_source_reach_the_run_summary(tmp_path):
    """Issue 13 item 14: a source's own events (Kafka offset gaps) were counted only in
    batches that also had dead letters."""
    gap = gap_event("t/0", 1, 10, 14, 15, 1_704_067_200_000_000_000)
    batch = TickBatch("t/0", [], [], 0, 0, [gap])
    got = run_collect(config(tmp_path), ItemsSource([batch]))
    assert got.stats is not None
    assert got.stats.events["SequenceGap"] == 1
    assert [e.type for e in got.events] == ["SequenceGap"]


def test_history_files_report_no_venue_latency(tmp_path, files):
    """Issue 13 item 14: a file run in live mode reported venue->recv latency in years."""
    cfg = config(tmp_path, run={"mode": "live"}, source={"kind": "file"})
    source = FileSource(FileSourceConfig(paths=(str(files["csv"]),), symbol="XRP-ETH"))
    got = run_collect(cfg, source)
    assert got.stats is not None
    assert got.updates
    assert "venue_to_recv" not in got.stats.latency.report()


def test_a_cluster_process_does_not_call_its_share_unbalanced():
    """Issue 13 item 14: a cluster process's table said "balanced NO" for partitions
    whose ticks other processes processed."""
    stats = RunStats()
    stats.count_source("synthetic/0", 100, 3)  # read here, processed in another process
    text = _render(accounting_table(stats, processes=2))
    assert "NO" not in text
    assert "only their sum balances" in text
    assert "NO" in _render(accounting_table(stats))


def _render(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_an_output_that_fails_inside_the_flow_is_one_error_line_not_an_abort(tmp_path):
    """A step's error inside Bytewax used to end in a Rust panic and, when a sink's
    close failed while Bytewax unwound, an abort (status 134) without the cause. Here a
    Redis cache that must not drop writes (`on_unavailable = "fail"`) at a closed port."""
    args = [
        "run", "--data-dir", str(tmp_path / "data"), "--set", "run.mode='replay'", "--set", "metrics.enabled=false",
        "--set", "cache.backend='redis'", "--set", "cache.redis.url='redis://127.0.0.1:1/0'",
        "--set", "cache.redis.on_unavailable='fail'", "--set", "cache.redis.timeout='200ms'",
        "--set", "source.synthetic.duration='2s'",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: redis redis://127.0.0.1:1/0 unreachable")
    assert "Traceback" not in result.stderr
    assert "stack backtrace" not in result.stderr
