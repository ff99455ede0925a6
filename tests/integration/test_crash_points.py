"""Kill -9 at every write point of every embedded store (issue 13): the candle store, the
event log, the cache file, the dead letters and the archive's units.

The stores declare their crash points (:mod:`ticktape.infra.observability.crashpoints`);
``TICKTAPE_CRASH_AT=<point>:<n>`` makes the process SIGKILL itself the n-th time it
gets there: no timing, the crash lands exactly at the write. One job is crashed at each
point in turn (every restart must get going again and reach the next point), then runs
to the end; its outputs equal a clean run's and its archive verifies. The points a job
run does not reach (compaction, retention deletes) crash the commands that reach them.
A point declared later and covered by no scenario fails :func:`test_every_point_is_covered`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import outputs
from ticktape.flows import wiring  # noqa: F401 - imports every store, so every point is declared
from ticktape.infra.observability.crashpoints import ENV, declared
from ticktape.sinks.archive import archiver  # noqa: F401 - declares the archive's points
from ticktape.sinks.archive.reader import ArchiveReader
from ticktape.sinks.archive.verify import verify
from ticktape.sinks.candles.store import CandleStore
from ticktape.sinks.eventlog.store import EventStore
from ticktape.sinks.objectstore.local import LocalObjectStore

pytestmark = pytest.mark.integration

CONFIG = """
[run]
mode = "replay"
data_dir = "{data}"
epoch_interval = "200ms"
batch_size = 400

[source]
kind = "synthetic"

[source.synthetic]
symbols = 30
rate = 1000.0
duration = "60s"
partitions = 2
duplicate_rate = 0.01
out_of_order_rate = 0.01
gap_rate = 0.002
malformed_rate = 0.01

[candles]
intervals = ["1s", "10s"]   # windows close all through the run, not only at its end

[archive]
enabled = true
store = "{data}/archive"
batch_rows = 1500
batch_age = "0s"
check_interval = "100ms"

[metrics]
enabled = false
"""

#: Points reached by a job run, and which occurrence to crash at (early: each restart
#: resumes where the last stopped, and the job must still be running at the next point).
JOB = {
    "candles.written": 2,
    "candles.renamed": 1,
    "eventlog.uncommitted": 2,
    "eventlog.committed": 1,
    "cache.uncommitted": 2,
    "cache.committed": 1,
    "deadletters.partial": 2,
    "deadletters.written": 1,
    "archive.before_put": 1,
    "archive.after_put": 1,
    "archive.after_head": 1,
    "archive.after_mark": 1,
}
#: Points of commands a job run does not reach: tested by their own scenarios below.
COMMANDS = {"candles.compacted", "archive.before_delete"}


def ticktape(*args: str, crash: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV} | ({ENV: crash} if crash else {})
    return subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def job_config(tmp: Path, name: str) -> tuple[Path, Path]:
    data = tmp / name
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(data=data))
    return cfg, data


def archived_events(data: Path) -> list[tuple[object, ...]]:
    """Every event, read through the archive where the log lost bodies: as stored."""
    reader = ArchiveReader(LocalObjectStore(data / "archive"), "ticktape")
    with EventStore(data / "events", reader) as store:
        return sorted((e.event_id, e.type, e.aggregate, e.seq, e.ts_event) for e in store.iter_events())


def test_every_point_is_covered():
    assert set(declared()) == set(JOB) | COMMANDS


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("clean")
    cfg, data = job_config(tmp, "data")
    result = ticktape("run", "-c", str(cfg))
    assert result.returncode == 0, result.stderr
    return data


def test_a_job_killed_at_every_write_point_in_turn_resumes_to_a_clean_runs_outputs(tmp_path, clean):
    cfg, data = job_config(tmp_path, "data")
    recovery = tmp_path / "recovery"
    for point, nth in JOB.items():
        started = time.monotonic()
        result = ticktape("run", "-c", str(cfg), "-r", str(recovery), crash=f"{point}:{nth}")
        assert result.returncode == -9, (
            f"{point}: expected a kill at write {nth}, got status {result.returncode} after "
            f"{time.monotonic() - started:.1f}s: {result.stderr[-2000:]}"
        )
    last = ticktape("run", "-c", str(cfg), "-r", str(recovery))
    assert last.returncode == 0, last.stderr[-3000:]
    assert "Traceback" not in last.stderr
    got, want = outputs.all_outputs(data), outputs.all_outputs(clean)
    assert got == want, outputs.diff_summary(got, want)
    assert want["dead_letters"]
    assert want["candles"]
    report = verify(
        LocalObjectStore(data / "archive"), "ticktape", sorted((data / "events").glob("part-*.sqlite"))
    )
    assert report.ok, report
    assert report.units > 0


def test_compaction_killed_before_it_removes_the_old_files_reads_the_same(tmp_path, clean):
    data = tmp_path / "data"
    store_dir = data / "candles"
    CandleStore(store_dir).append(CandleStore(clean / "candles").read(all_revisions=True), writer="p000")
    CandleStore(store_dir).append(CandleStore(clean / "candles").read(), writer="p001")  # a rerun's repeats
    before = CandleStore(store_dir).read()
    files = len(CandleStore(store_dir).files())
    killed = ticktape("candles", "--compact", "--data-dir", str(data), crash="candles.compacted:1")
    assert killed.returncode == -9, killed.stderr
    assert CandleStore(store_dir).read() == before
    shown = ticktape("candles", before[0].symbol, "--interval", "1m", "--data-dir", str(data), "--json")
    assert shown.returncode == 0, shown.stderr
    done = ticktape("candles", "--compact", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert CandleStore(store_dir).read() == before
    assert len(CandleStore(store_dir).files()) < files


def test_retention_killed_before_it_deletes_bodies_deletes_them_on_the_next_pass(tmp_path, clean):
    data = tmp_path / "data"
    for name in ("events", "archive"):  # a copy of the clean run's log and archive
        shutil.copytree(clean / name, data / name)
    want = archived_events(data)
    args = ("archive", "run", "--force", "--data-dir", str(data), "--set", "archive.retention='0s'")
    args += ("--store", str(data / "archive"))
    killed = ticktape(*args, crash="archive.before_delete:1")
    assert killed.returncode == -9, killed.stderr
    assert ticktape(*args).returncode == 0
    assert archived_events(data) == want  # the bodies left the log, the archive serves them
    report = verify(
        LocalObjectStore(data / "archive"), "ticktape", sorted((data / "events").glob("part-*.sqlite"))
    )
    assert report.ok, report
    with EventStore(data / "events") as local:
        assert len(list(local.iter_events())) < len(want)
