"""PostgreSQL as the production projection store (a real server from Debian's package):
the same projections as SQLite, rebuilt or maintained, and at a point in time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.flows import config
from tests.support.orders import (
    order_messages,
    order_outputs,
    process,
    projections,
    write_log,
    write_messages,
)
from ticktape.flows.orders.run import run_orders
from ticktape.schemas.errors import ConfigError
from ticktape.sinks.eventlog.log import EventLogPartition, partition_of, partition_path
from ticktape.sinks.projections.open import open_store
from ticktape.sinks.projections.projector import Projector, position_at

pytestmark = pytest.mark.integration


def test_postgresql_and_sqlite_give_equal_projections(tmp_path: Path, postgres_db: str) -> None:
    events, _, _ = process(order_messages(400, seed=21, faults=0.15))
    directory = tmp_path / "events"
    write_log(directory, events, parts=3, batch=31)
    with open_store("sqlite", tmp_path) as lite, open_store(postgres_db, tmp_path) as pg:
        Projector(lite, snapshot_every=4).catch_up_dir(directory)
        Projector(pg, snapshot_every=4).catch_up_dir(directory)
        want = projections(lite.dump())
        assert projections(pg.dump()) == want
        assert len(want["proj_orders"]) > 350
        for account, symbol in lite.position_keys():
            for at in (1_700_000_010_000_000_000, 1_700_000_050_000_000_000, 1_800_000_000_000_000_000):
                assert position_at(pg, account, symbol, at) == position_at(lite, account, symbol, at)
        assert [v.order_id for v in pg.open_orders("BTC-USDT")] == [
            v.order_id for v in lite.open_orders("BTC-USDT")
        ]
        # a rebuild from scratch in PostgreSQL equals what was maintained
        Projector(pg, snapshot_every=4).rebuild(directory)
        assert projections(pg.dump()) == want


def test_incremental_maintenance_in_postgresql_equals_a_rebuild(tmp_path: Path, postgres_db: str) -> None:
    events, _, _ = process(order_messages(200, seed=22, faults=0.1))
    directory = tmp_path / "inc"
    writers = [EventLogPartition(partition_path(directory, i)) for i in range(2)]
    rng = random.Random(4)
    with open_store(postgres_db, tmp_path) as pg:
        projector = Projector(pg, snapshot_every=3)
        for start in range(0, len(events), 23):
            by_part: dict[int, list] = {}
            for e in events[start : start + 23]:
                by_part.setdefault(partition_of(e.aggregate, 2), []).append(e)
            for i, chunk in by_part.items():
                writers[i].append(chunk)
            projector.catch_up(partition_path(directory, rng.randrange(2)))
        for w in writers:
            w.close()
        projector.catch_up_dir(directory)
        incremental = projections(pg.dump())
        Projector(pg, snapshot_every=3).rebuild(directory)
        assert projections(pg.dump()) == incremental


def test_the_orders_flow_writes_the_same_projections_to_postgresql(tmp_path: Path, postgres_db: str) -> None:
    path = write_messages(tmp_path / "orders.jsonl", order_messages(300, seed=23, faults=0.2))
    run_orders(config(tmp_path / "lite"), files=[path])
    run_orders(config(tmp_path / "pg", orders={"projections": postgres_db}), files=[path])
    assert order_outputs(tmp_path / "pg", postgres_db) == order_outputs(tmp_path / "lite")


def test_a_password_in_the_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PGPASSWORD") as err:
        open_store("postgresql://u:hunter2@127.0.0.1:1/db", tmp_path)
    assert "hunter2" not in str(err.value)
