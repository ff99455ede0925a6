"""The command line as users run it (a real subprocess each time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import TRADES


def ticktape(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    data = tmp_path_factory.mktemp("demo")
    result = ticktape(
        "demo",
        "--duration",
        "3s",
        "--rate",
        "3000",
        "--symbols",
        "20",
        "--data-dir",
        str(data),
        "--no-progress",
    )
    return data, result


def test_demo_runs_and_reports_every_output(demo_dir):
    data, result = demo_dir
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "accounting balanced: True" in out
    for name in ("events", "dead_letters", "cache", "report"):
        assert name in out
    reports = list((data / "reports").glob("run-*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    total = report["accounting"]["total"]
    assert total["read"] == 9000
    assert total["read"] == total["accepted"] + total["rejected"] + total["duplicate"]
    assert total["rejected"] > 0
    assert total["duplicate"] > 0
    assert report["latency_ms"]["recv_to_sink"]["p99_ms"] > 0
    assert list((data / "events").glob("part-*.sqlite"))
    lines = [
        json.loads(line)
        for f in (data / "deadletters").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(lines) == total["rejected"]
    assert all(line["code"] and line["message"] and line["src"] for line in lines)


def test_demo_progress_view_renders(tmp_path):
    result = ticktape("demo", "--duration", "2s", "--rate", "1000", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "ticks/s" in result.stdout
    assert "cache hit rate" in result.stdout


def test_events_query_pages_and_filters(demo_dir):
    data, _ = demo_dir
    first = ticktape(
        "events", "query", "--data-dir", str(data), "--type", "PriceUpdated", "--limit", "5", "--json"
    )
    assert first.returncode == 0, first.stderr
    docs = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(docs) == 6
    assert "cursor" in docs[-1]
    assert all(d["type"] == "PriceUpdated" for d in docs[:-1])
    second = ticktape(
        "events",
        "query",
        "--data-dir",
        str(data),
        "--type",
        "PriceUpdated",
        "--limit",
        "5",
        "--json",
        "--cursor",
        docs[-1]["cursor"],
    )
    docs2 = [json.loads(line) for line in second.stdout.splitlines()]
    assert {d["event_id"] for d in docs[:-1]}.isdisjoint(d.get("event_id") for d in docs2)
    agg = docs[0]["aggregate"]
    by_agg = ticktape(
        "events", "query", "--data-dir", str(data), "--aggregate", agg, "--limit", "3", "--json"
    )
    seqs = [json.loads(line)["seq"] for line in by_agg.stdout.splitlines() if "seq" in line]
    assert seqs == sorted(seqs)
    assert len(seqs) == 3
    dead = ticktape("events", "query", "--data-dir", str(data), "--type", "DeadLettered")
    assert dead.returncode == 0
    assert "DeadLettered" in dead.stdout
    stats = ticktape("events", "query", "--data-dir", str(data), "--stats")
    assert json.loads(stats.stdout)["events"] > 0


def test_events_snapshot_state_replay_export_stats(demo_dir, tmp_path):
    from ticktape.sinks.eventlog.export import read_export
    from ticktape.sinks.eventlog.state import fold, state_json

    data, _ = demo_dir
    agg = "S0001-USD@synthetic"
    snap = ticktape("events", "snapshot", "--every", "50", "--data-dir", str(data))
    assert snap.returncode == 0, snap.stderr
    assert "events/s" in snap.stdout
    replay = ticktape("events", "replay", agg, "--json", "--data-dir", str(data))
    docs = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs)
    assert {d["aggregate"] for d in docs} == {agg}
    at = docs[len(docs) // 2]["ts_event"]
    state = ticktape("events", "state", agg, "--at", str(at), "--json", "--data-dir", str(data))
    assert state.returncode == 0, state.stderr
    got = json.loads(state.stdout)
    exported = tmp_path / "agg.jsonl"
    export = ticktape(
        "events", "export", str(exported), "--zstd", "--aggregate", agg, "--data-dir", str(data)
    )
    assert export.returncode == 0, export.stderr
    events = list(read_export(tmp_path / "agg.jsonl.zst"))
    assert [e.event_id for e in events] == [d["event_id"] for d in docs]
    assert got == {
        "at": at,
        **json.loads(json.dumps(state_json(fold(e for e in events if e.ts_event <= at)))),
    }
    table = ticktape("events", "state", agg, "--at", "2100-01-01", "--data-dir", str(data))
    assert "last candle per interval" in table.stdout  # candles close at their window end
    stats = ticktape("events", "stats", "--json", "--data-dir", str(data))
    doc = json.loads(stats.stdout)
    assert doc["snapshots"] > 0
    assert doc["aggregates"] > 0
    assert sum(doc["types"].values()) == doc["events"]


def test_cache_get_and_stats(demo_dir):
    data, _ = demo_dir
    got = ticktape("cache", "get", "S0001-USD", "--venue", "synthetic", "--data-dir", str(data))
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    assert doc["key"] == "price/synthetic/S0001-USD"
    assert doc["value"][1] == "S0001-USD"
    assert "expired" in doc["state"] or doc["state"] == "fresh"
    meta = ticktape("cache", "get", "S0001-USD", "--kind", "metadata", "--data-dir", str(data))
    assert json.loads(meta.stdout)["value"]["symbol"] == "S0001-USD"
    stats = ticktape("cache", "stats", "--data-dir", str(data))
    assert stats.returncode == 0
    assert "price" in stats.stdout
    assert "hit rate" in stats.stdout


def test_demo_replays_a_history_file(tmp_path):
    result = ticktape(
        "demo",
        "--file",
        str(TRADES / "kraken_XBTUSDT_http_trades.json"),
        "--data-dir",
        str(tmp_path),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert "file:kraken_XBTUSDT_http_trades.json" in result.stdout
    assert "accounting balanced: True" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-c", "does-not-exist.toml"], "config file not found"),
        (["events", "query", "--data-dir", "nowhere-at-all"], "no event log"),
        (["run", "--set", "run.nope=1"], "nope"),
        (["run", "--set", "run.epoch_interval=soon"], "duration"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, args, message):
    result = ticktape(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_key_names_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[cache]\nprice_tll = '2s'\n")
    result = ticktape("config", "check", "-c", str(cfg))
    assert result.returncode == 2
    assert "price_tll" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_everywhere():
    for args in (
        ["--help"],
        ["demo", "--help"],
        ["run", "--help"],
        ["events", "--help"],
        ["events", "query", "--help"],
        ["cache", "get", "--help"],
        ["bench", "--help"],
    ):
        result = ticktape(*args)
        assert result.returncode == 0, args
        assert "Usage:" in result.stdout, args


def test_candles_command_prints_stored_candles(demo_dir):
    data, _ = demo_dir
    result = ticktape(
        "candles", "S0001-USD", "--interval", "1m", "--venue", "synthetic", "--data-dir", str(data), "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows
    assert {r["symbol"] for r in rows} == {"S0001-USD"}
    assert all(r["interval"] == 60 and r["trades"] > 0 for r in rows)
    table = ticktape("candles", "S0001-USD", "--data-dir", str(data))
    assert "S0001-USD 1m candles" in table.stdout
    cached = ticktape("cache", "get", "S0001-USD", "--kind", "candle", "--data-dir", str(data))
    assert json.loads(cached.stdout)["value"][1] == "S0001-USD"


def test_the_demo_suggests_commands_that_work(demo_dir):
    data, result = demo_dir
    hints = result.stdout.split("next:", 1)[1].replace("\n", " ")
    commands = [c.strip() for c in hints.split(",")]
    assert len(commands) == 3
    for command in commands:
        args = command.split()
        assert args[0] == "ticktape"
        run = ticktape(*args[1:], "--data-dir", str(data))
        assert run.returncode == 0, (command, run.stderr)


def test_input_text_never_reaches_the_terminal_as_markup_or_escapes(tmp_path):
    """Issue 13 item 11: venues like ``[red]...[/red]``/``[link=...]`` were Rich markup in
    ``events query``, and raw ESC sequences reached the terminal."""
    from ticktape.schemas.ids import event_id
    from ticktape.schemas.records import Event, EventType
    from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path

    hostile = "[red]RED[/red] [link=http://127.0.0.1/x]LINK[/link] \x1b[31mESC\x1b]0;t\x07 \x9b2J \u202e"
    agg = f"BTC-USD@{hostile}"
    payload = json.dumps({"venue": hostile, "message": f"got {hostile}"}, ensure_ascii=False).encode()
    e = Event(event_id(1, "X", agg), EventType.DEAD_LETTER, agg, 1, 1_700_000_000 * 10**9, 0, payload, "c")
    events = tmp_path / "events"
    writers = [EventLogPartition(partition_path(events, i)) for i in range(4)]
    writers[partition_of(agg, 4)].append([e])
    for w in writers:
        w.close()
    for args in (("events", "query"), ("events", "replay", agg), ("events", "query", "--json")):
        r = ticktape(*args, "--data-dir", str(tmp_path))
        assert r.returncode == 0, r.stderr
        shown = r.stdout + r.stderr
        assert not any(c in shown for c in "\x1b\x07\x9b\u202e"), repr(shown)
        if "--json" not in args:
            assert "[red]RED[/red]" in shown or "[red]RED[/red]" in shown.replace("\n", "")
            assert "\\u001b" in shown
