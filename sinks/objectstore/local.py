"""The embedded object store: a local directory with the ``ObjectStore`` contract.

Layout: object ``a/b.parquet`` is the file ``<root>/a/b.parquet``; its checksum lives in
the sidecar ``<root>/a/b.parquet.sha256``. Guarantees:

* **Atomic put.** Data and sidecar are written to temporary files in the target
  directory, fsynced, then renamed over the old ones (``os.replace``), and the directory
  is fsynced. A crash at any point leaves the old object or the new one, never a partial
  file under the key; leftover temporaries (``.tmp-*``) are invisible to ``list``/``head``
  and are swept by :meth:`LocalObjectStore.sweep_temporaries`.
* **A sidecar is never trusted when stale.** It records the SHA-256 together with the
  data file's fingerprint (inode, size, mtime); ``head`` recomputes the hash from the data
  (and rewrites the sidecar) when the sidecar is missing, unreadable or its fingerprint
  does not match. ``put`` also removes the old sidecar before the data rename, so even a
  filesystem that reuses inodes cannot pair new data with an old checksum.
* **Contained paths.** Keys are validated with ``check_key`` and the resolved directory
  must lie under ``root`` (a symlink planted in the tree cannot redirect a write).
  Segments starting with ``.tmp-`` and names ending in ``.sha256`` are reserved.

Why a sidecar and not an extended attribute: xattrs would be atomic with the rename, but
they are missing or limited on common targets (tmpfs before Linux 6.6, some overlayfs and
NFS mounts, macOS), and ``cp``/``rsync``/``tar`` drop them silently by default; a stale
or missing sidecar is detected and repaired instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ticktape.schemas.errors import ArchiveError
from ticktape.sinks.base.files import fsync_dir
from ticktape.sinks.objectstore.base import ObjectInfo, check_key, check_list_prefix, check_sha256

SIDECAR_SUFFIX = ".sha256"
TEMP_PREFIX = ".tmp-"
_NAME_MAX = 255 - len(SIDECAR_SUFFIX)  # the sidecar's name must fit in NAME_MAX too
_CHUNK = 1 << 20


def _write_durably(path: Path, chunks: list[bytes]) -> os.stat_result:
    """Write ``chunks`` to a new file ``path`` (must not exist), fsync it, return its stat."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def _fingerprint(st: os.stat_result) -> str:
    return f"{st.st_size} {st.st_ino} {st.st_mtime_ns}"


class LocalObjectStore:
    """Objects as files under ``root`` (created if missing); see the module docstring."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._real_root = self.root.resolve(strict=True)
        except OSError as exc:
            raise ArchiveError(f"cannot use {self.root} as an object store: {exc}") from exc

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file of ``key``, after checking the key and that it resolves under root."""
        check_key(key)
        name = key.rsplit("/", 1)[-1]
        if name.endswith(SIDECAR_SUFFIX) or any(p.startswith(TEMP_PREFIX) for p in key.split("/")):
            raise ArchiveError(
                f"object key {key!r} is reserved by the local store (*{SIDECAR_SUFFIX}, {TEMP_PREFIX}*)"
            )
        if any(len(p.encode()) > _NAME_MAX for p in key.split("/")):
            raise ArchiveError(f"object key {key[:80]!r}...: a segment is longer than {_NAME_MAX} bytes")
        path = self.root / key
        self._contained(path, key)
        return path

    def _contained(self, path: Path, key: str) -> None:
        """Refuse ``path`` if it resolves (symlinks followed) outside the root."""
        if not path.resolve().is_relative_to(self._real_root):
            raise ArchiveError(f"object key {key!r} resolves outside the store root {self.root}")

    def _make_dirs(self, directory: Path, key: str) -> None:
        """Create ``directory`` under root one level at a time, fsyncing each new entry."""
        missing: list[Path] = []
        current = directory
        while current != self.root and not current.exists():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                pass
            except OSError as exc:
                raise ArchiveError(f"put {key!r}: cannot create {path}: {exc}") from exc
            fsync_dir(path.parent)
        if not directory.is_dir():
            raise ArchiveError(f"put {key!r}: {directory.relative_to(self.root)} is an object, not a prefix")
        self._contained(directory, key)

    # -- the ObjectStore contract -------------------------------------------------------

    def put(self, key: str, data: bytes, sha256_hex: str) -> None:
        path = self._path(key)
        check_sha256(data, sha256_hex, key)
        directory = path.parent
        self._make_dirs(directory, key)
        tag = secrets.token_hex(8)
        tmp_data = directory / f"{TEMP_PREFIX}{tag}.data"
        tmp_sidecar = directory / f"{TEMP_PREFIX}{tag}.sha256"
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        try:
            st = _write_durably(tmp_data, [data])
            _write_durably(tmp_sidecar, [f"{sha256_hex} {_fingerprint(st)}\n".encode()])
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sidecar)  # never pair the new data with the old checksum
            os.replace(tmp_data, path)
            os.replace(tmp_sidecar, sidecar)
            fsync_dir(directory)
        except OSError as exc:
            raise ArchiveError(f"put {key!r} in {self.root}: {exc}") from exc
        finally:
            for tmp in (tmp_data, tmp_sidecar):
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ArchiveError(f"head {key!r} in {self.root}: {exc}") from exc
        if not path.is_file():
            return None
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        try:
            sha, fingerprint = sidecar.read_text("ascii").strip().split(" ", 1)
        except (OSError, ValueError, UnicodeDecodeError):
            sha, fingerprint = "", ""
        if fingerprint == _fingerprint(st) and len(sha) == 64:
            return ObjectInfo(key, st.st_size, sha)
        return self._repair(key, path, sidecar)

    def _repair(self, key: str, path: Path, sidecar: Path) -> ObjectInfo:
        """Hash the data file and rewrite its sidecar (best effort: read-only trees work)."""
        digest = hashlib.sha256()
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise ArchiveError(f"head {key!r} in {self.root}: {exc}") from exc
        sha = digest.hexdigest()
        tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}.sha256")
        try:
            _write_durably(tmp, [f"{sha} {_fingerprint(st)}\n".encode()])
            os.replace(tmp, sidecar)
            fsync_dir(path.parent)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return ObjectInfo(key, st.st_size, sha)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ArchiveError(f"get {key!r} in {self.root}: {exc}") from exc

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; ``end`` past the object is clamped (as S3 does), a
        ``start`` at or past the end of a non-empty range raises ``ArchiveError``."""
        if not 0 <= start <= end:
            raise ArchiveError(f"get_range {key!r}: expected 0 <= start <= end, got [{start}, {end})")
        path = self._path(key)
        if start == end:
            return b""
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if start >= size:
                    raise ArchiveError(
                        f"get_range {key!r}: range [{start}, {end}) not satisfiable (size {size})"
                    )
                f.seek(start)
                return f.read(min(end, size) - start)
        except OSError as exc:
            raise ArchiveError(f"get_range {key!r} in {self.root}: {exc}") from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix, as in S3), in
        lexicographic key order; sidecars and temporaries are never listed."""
        check_list_prefix(prefix)
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if base:
            check_key(base)
            if not start.is_dir():
                return
            self._contained(start, base)
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TEMP_PREFIX) or name.endswith(SIDECAR_SUFFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            info = self.head(key)
            if info is not None:  # deleted while listing
                yield info

    def delete(self, key: str) -> None:
        """Remove the object and its sidecar; no error if absent. Directories stay (they
        are not objects: ``list`` never shows them)."""
        path = self._path(key)
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        try:
            for victim in (path, sidecar):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    os.unlink(victim)
            if path.parent.is_dir():
                fsync_dir(path.parent)
        except OSError as exc:
            raise ArchiveError(f"delete {key!r} in {self.root}: {exc}") from exc

    def sweep_temporaries(self) -> int:
        """Delete temporaries left by crashed puts; returns how many were removed.

        Only call this when no other process is writing to the store."""
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
        return removed
