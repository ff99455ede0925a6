"""ticktape.sinks.objectstore.local: the embedded object store (a directory), on real files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ticktape.schemas.errors import ArchiveError, ConfigError
from ticktape.sinks.objectstore.base import ObjectInfo, ObjectStore, sha256_of
from ticktape.sinks.objectstore.local import LocalObjectStore
from ticktape.sinks.objectstore.stores import open_store

KEY = "stream=trades/date=2024-01-02/hour=03/part=0/1-100.parquet"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> LocalObjectStore:
    return LocalObjectStore(root)


def put(store: ObjectStore, key: str, data: bytes) -> None:
    store.put(key, data, sha256_of(data))


def files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def test_round_trip(store: LocalObjectStore, root: Path) -> None:
    data = os.urandom(10_000)
    put(store, KEY, data)
    assert store.url == root.absolute().as_uri()
    assert store.head(KEY) == ObjectInfo(KEY, 10_000, sha256_of(data))
    assert store.get(KEY) == data
    assert store.get_range(KEY, 100, 200) == data[100:200]
    assert store.get_range(KEY, 9_990, 20_000) == data[9_990:]  # clamped, as S3 does
    assert store.get_range(KEY, 5, 5) == b""
    assert list(store.list()) == [ObjectInfo(KEY, 10_000, sha256_of(data))]
    put(store, KEY, b"v2")  # replace
    assert store.get(KEY) == b"v2"
    assert store.head(KEY) == ObjectInfo(KEY, 2, sha256_of(b"v2"))
    store.delete(KEY)
    store.delete(KEY)  # absent: no error
    assert store.head(KEY) is None
    assert list(store.list()) == []
    with pytest.raises(ArchiveError, match="get"):
        store.get(KEY)


def test_get_range_bounds(store: LocalObjectStore) -> None:
    put(store, "k", b"0123456789")
    for start, end in ((10, 12), (11, 20), (-1, 3), (5, 4)):
        with pytest.raises(ArchiveError):
            store.get_range("k", start, end)


def test_put_refuses_a_wrong_or_malformed_checksum(store: LocalObjectStore, root: Path) -> None:
    for sha in (sha256_of(b"other"), "ABC", sha256_of(b"data").upper()):
        with pytest.raises(ArchiveError):
            store.put("k", b"data", sha)
    assert files_under(root) == set()


def test_list_is_lexicographic_with_plain_string_prefixes(store: LocalObjectStore) -> None:
    keys = ["a/b", "a-c", "a.d", "a/a", "a=b", "b/c/d", "stream=trades/x", "stream=tr/y"]
    for key in keys:
        put(store, key, key.encode())
    assert [i.key for i in store.list()] == sorted(keys)  # S3 order: '-' < '.' < '/' < '='
    assert [i.key for i in store.list("a/")] == ["a/a", "a/b"]
    assert [i.key for i in store.list("a")] == ["a-c", "a.d", "a/a", "a/b", "a=b"]
    assert [i.key for i in store.list("stream=tr")] == ["stream=tr/y", "stream=trades/x"]
    assert [i.key for i in store.list("nope/")] == []
    with pytest.raises(ArchiveError):
        list(store.list("../"))


def test_object_and_prefix_cannot_share_a_name(store: LocalObjectStore) -> None:
    put(store, "a", b"1")
    with pytest.raises(ArchiveError, match="not a prefix"):
        put(store, "a/b", b"2")
    put(store, "c/d", b"3")
    with pytest.raises(ArchiveError):
        put(store, "c", b"4")
    assert store.head("c") is None
    assert [i.key for i in store.list()] == ["a", "c/d"]


# -- atomicity --------------------------------------------------------------------------


def test_failed_rename_leaves_the_old_object(
    store: LocalObjectStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(store, KEY, b"old")
    before = files_under(root)

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ArchiveError, match="No space left"):
        put(store, KEY, b"new" * 1000)
    monkeypatch.undo()
    assert store.get(KEY) == b"old"
    assert store.head(KEY) == ObjectInfo(KEY, 3, sha256_of(b"old"))
    assert files_under(root) == before  # temporaries cleaned up


CRASH = """
import os, signal, sys
from ticktape.sinks.objectstore.base import sha256_of
from ticktape.sinks.objectstore.local import LocalObjectStore
calls = 0
real_replace = os.replace
def crashing_replace(src, dst):
    global calls
    calls += 1
    if calls == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
os.replace = crashing_replace
data = b"new" * 100_000
LocalObjectStore(sys.argv[1]).put(sys.argv[3], data, sha256_of(data))
"""


@pytest.mark.parametrize("crash_at", [1, 2], ids=["before-data-rename", "before-sidecar-rename"])
def test_killed_put_leaves_old_or_new_object(store: LocalObjectStore, root: Path, crash_at: int) -> None:
    put(store, KEY, b"old")
    proc = subprocess.run([sys.executable, "-c", CRASH, str(root), str(crash_at), KEY], check=False)
    assert proc.returncode == -9
    new = b"new" * 100_000
    expected = b"old" if crash_at == 1 else new
    assert store.get(KEY) == expected
    assert store.head(KEY) == ObjectInfo(KEY, len(expected), sha256_of(expected))  # never stale
    assert [i.key for i in store.list()] == [KEY]  # temporaries are invisible
    assert store.sweep_temporaries() >= 1
    assert not [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_concurrent_puts_of_one_key_stay_consistent(store: LocalObjectStore) -> None:
    payloads = [bytes([i]) * (1000 + i) for i in range(8)]
    threads = [threading.Thread(target=put, args=(store, "k", p)) for p in payloads for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = store.get("k")
    assert data in payloads
    assert store.head("k") == ObjectInfo("k", len(data), sha256_of(data))


# -- sidecar repair -----------------------------------------------------------------------


def sidecar(root: Path, key: str) -> Path:
    return root / f"{key}.sha256"


def test_missing_or_garbage_sidecar_is_recomputed(store: LocalObjectStore, root: Path) -> None:
    put(store, KEY, b"payload")
    expected = ObjectInfo(KEY, 7, sha256_of(b"payload"))
    sidecar(root, KEY).unlink()
    assert store.head(KEY) == expected
    assert sidecar(root, KEY).read_text().startswith(expected.sha256)  # repaired
    sidecar(root, KEY).write_bytes(b"\xff garbage")
    assert store.head(KEY) == expected
    sidecar(root, KEY).write_text("0" * 64 + " 7 1 2\n")  # well-formed, wrong fingerprint
    assert store.head(KEY) == expected


@pytest.mark.parametrize("same_size", [False, True])
def test_stale_sidecar_is_detected(store: LocalObjectStore, root: Path, same_size: bool) -> None:
    put(store, KEY, b"payload")
    changed = b"PAYLOAD" if same_size else b"longer payload"
    (root / KEY).write_bytes(changed)  # behind the store's back: sidecar now stale
    assert store.head(KEY) == ObjectInfo(KEY, len(changed), sha256_of(changed))


def test_unwritable_sidecar_still_answers_head(
    store: LocalObjectStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(store, "d/k", b"x")
    sidecar(root, "d/k").unlink()

    def read_only(src: object, dst: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)  # (tests may run as root: chmod would not stop it)
    assert store.head("d/k") == ObjectInfo("d/k", 1, sha256_of(b"x"))
    assert not sidecar(root, "d/k").exists()
    assert [p.name for p in (root / "d").iterdir()] == ["k"]  # no temporary left behind


# -- hostile keys -------------------------------------------------------------------------

HOSTILE = [
    "../x",
    "../../etc/passwd",
    "/abs",
    "/etc/passwd",
    "a//b",
    "a/./b",
    "a/../../x",
    "a/..",
    ".",
    "..",
    "",
    "a/",
    "/",
    "a\\..\\x",
    "a\x00b",
    "é",
    "a/ü/b",
    "\u2025/x",  # two-dot leader
    "a b",
    "k.sha256",  # reserved: sidecar name
    "d/.tmp-x",  # reserved: temporary name
    "x" * 2000,  # one segment longer than NAME_MAX
]


@pytest.mark.parametrize("key", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_keys_are_refused_before_any_io(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path / "store")
    before = files_under(tmp_path)
    calls = [
        lambda: store.put(key, b"x", sha256_of(b"x")),
        lambda: store.head(key),
        lambda: store.get(key),
        lambda: store.get_range(key, 0, 1),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(ArchiveError):
            call()
    assert files_under(tmp_path) == before


def test_long_keys_within_limits_stay_under_root(store: LocalObjectStore, root: Path) -> None:
    key = "/".join(["s" * 199] * 10)  # 1,999 characters
    put(store, key, b"deep")
    assert (root / key).read_bytes() == b"deep"
    assert [i.key for i in store.list()] == [key]


def test_symlinks_cannot_redirect_reads_or_writes(
    store: LocalObjectStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "evil").symlink_to(outside, target_is_directory=True)
    (root / "link").symlink_to(outside / "secret")
    with pytest.raises(ArchiveError, match="outside"):
        put(store, "evil/x", b"x")
    for key in ("evil/secret", "link"):
        with pytest.raises(ArchiveError, match="outside"):
            store.get(key)
        with pytest.raises(ArchiveError, match="outside"):
            store.head(key)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


# -- open_store --------------------------------------------------------------------------


def test_open_store_local_forms(tmp_path: Path) -> None:
    for target in (tmp_path / "a", str(tmp_path / "b"), (tmp_path / "c d").as_uri()):
        store = open_store(target)
        assert isinstance(store, LocalObjectStore)
        put(store, "k", b"v")
    assert (tmp_path / "c d" / "k").read_bytes() == b"v"
    for bad in ("ftp://host/x", "file://otherhost/x", "s3://", "s3://Bad_Bucket/x", "s3://bucket/../x"):
        with pytest.raises(ConfigError):
            open_store(bad)
