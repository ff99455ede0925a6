"""Multi-process cluster runs (``-i/-a`` on loopback) give the same outputs as one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.test_recovery import start, write_config
from tests.support import outputs
from ticktape.infra.devstack.ports import free_port
from ticktape.sinks.archive.reader import KEY, ArchiveReader
from ticktape.sinks.archive.verify import verify
from ticktape.sinks.objectstore.local import LocalObjectStore

pytestmark = pytest.mark.integration


def test_two_process_cluster_equals_one_process(tmp_path):
    single_dir, cluster_dir = tmp_path / "single", tmp_path / "cluster"
    single = start(write_config(tmp_path / "single.toml", single_dir, 40), None)
    assert single.wait(timeout=300) == 0
    cfg = write_config(tmp_path / "cluster.toml", cluster_dir, 40)
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    procs = [start(cfg, None, "-i", str(i), "-a", addresses) for i in range(2)]
    for proc in procs:
        rc = proc.wait(timeout=300)
        assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    got, want = outputs.all_outputs(cluster_dir), outputs.all_outputs(single_dir)
    assert got == want, outputs.diff_summary(got, want)
    assert len(want["events"]) > 30_000
    # each process reads its own source partitions, but the keyed steps run where the
    # symbol's shard lives: only the sum of the processes' reports balances
    reports = [json.loads(p.read_text()) for p in (cluster_dir / "reports").glob("run-*.json")]
    assert [r["processes"] for r in reports] == [2, 2]
    keys = ("read", "accepted", "rejected", "duplicate")
    summed = {k: sum(r["accounting"]["total"][k] for r in reports) for k in keys}
    assert summed["read"] == summed["accepted"] + summed["rejected"] + summed["duplicate"] > 30_000
    single_report = next((single_dir / "reports").glob("run-*.json"))
    assert json.loads(single_report.read_text())["accounting"]["total"] == summed


ARCHIVE = """
[archive]
enabled = true
store = "{store}"
batch_rows = 3000
batch_age = "0s"
check_interval = "200ms"
"""


def test_cluster_processes_and_later_writers_sharing_one_archive_prefix_never_collide(tmp_path):
    """Issue 13 item 9: processes sharing a bucket/prefix wrote the same keys (rows are
    numbered per event-log file, and a partition that moves to another process starts a
    new file), so objects overwrote and shadowed each other. A 2-process cluster (each
    process its own data dir, like the StatefulSet's pods), then the partitions of
    process 0 moving to process 1 (a second run of process 1's data dir alone): every
    writer's objects stay its own, `archive verify` passes for both data dirs, and the
    archive holds every row of every event log."""
    store = tmp_path / "store"
    dirs = [tmp_path / "d0", tmp_path / "d1"]
    cfgs = []
    for i, data in enumerate(dirs):
        cfg = write_config(tmp_path / f"p{i}.toml", data, 15)
        cfg.write_text(cfg.read_text() + ARCHIVE.format(store=store))
        cfgs.append(cfg)
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    procs = [start(cfgs[i], None, "-i", str(i), "-a", addresses) for i in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    # the same data dir of process 1, alone: it now also writes partitions 0 and 2
    later = start(cfgs[1], None, "--set", "source.synthetic.seed=99")
    assert later.wait(timeout=300) == 0, later.stderr.read().decode() if later.stderr else ""
    for cfg in cfgs:  # archive what the in-flow passes left pending
        assert cli_archive("run", "--force", "-c", str(cfg)).returncode == 0

    logged = 0
    for data, cfg in zip(dirs, cfgs, strict=True):
        report = verify(LocalObjectStore(store), "ticktape", sorted((data / "events").glob("part-*.sqlite")))
        assert not report.mismatched  # nobody overwrote this data dir's objects
        assert not report.orphans
        assert report.ok, report
        assert cli_archive("verify", "-c", str(cfg)).returncode == 0
        logged += sum(1 for e in outputs.events(data) if e[1] == "PriceUpdated")
    arch = ArchiveReader(LocalObjectStore(store), "ticktape")
    assert arch.read(stream="ticks").num_rows == logged > 25_000
    writers = {m.groupdict()["writer"] for m in map(KEY.match, (o.key for o in arch.iter_keys())) if m}
    assert len(writers) == 6  # d0: 2 files, d1: 4 files; one name each
    assert {w.rsplit("-", 1)[0] for w in writers} == {"ticktape-p0", "ticktape-p1"}


def cli_archive(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticktape.flows.cli.main", "archive", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
