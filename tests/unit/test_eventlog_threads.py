"""Stores used from several threads at once (every event-log partition runs its own
archiver thread): nothing they share may be unsafe across threads. A zstd compressor
shared by the partitions' retention passes crashed the process (SIGSEGV) when two
passes ran together; the check runs in a child process, so a crash fails this test
instead of ending the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.events import make_log


def test_retention_passes_of_several_partitions_can_run_at_once(tmp_path: Path) -> None:
    make_log(tmp_path, seed=5, sizes={f"S{i}-USD@v": 400 for i in range(40)}, parts=4, batch=50)
    script = textwrap.dedent(f"""
        import sqlite3, threading
        from pathlib import Path
        from ticktape.sinks.eventlog.log import partition_path, remember_deleted_ids

        def passes(index):
            db = sqlite3.connect(partition_path(Path({str(tmp_path)!r}), index))
            last = db.execute("SELECT max(id) FROM batches").fetchone()[0]
            for _ in range(30):
                with db:
                    remember_deleted_ids(db, 1, last)

        threads = [threading.Thread(target=passes, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("ok")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
