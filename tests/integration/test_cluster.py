"""Multi-process cluster runs (``-i/-a`` on loopback) give the same outputs as one process."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_recovery import start, write_config
from tests.support import outputs
from ticktape.infra.devstack.ports import free_port

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
