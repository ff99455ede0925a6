"""Object stores for the archive: the interface every store implements.

Implementations: ``ticktape.sinks.objectstore.local.LocalObjectStore`` (a directory: the embedded
default) and ``ticktape.sinks.objectstore.s3.S3ObjectStore`` (boto3; AWS S3 or MinIO via
``endpoint_url``). Both honour the same contract, which is what the archive protocol
(docs/architecture.md, "The archive") relies on:

* ``put`` stores ``data`` under ``key`` atomically (readers see the old object or the
  new one, never a partial one) and records its SHA-256; re-putting the same key
  replaces the object.
* ``head`` returns the stored size and SHA-256 (hex) without reading the object, or
  ``None`` if there is no such object. A store that cannot return a checksum must
  compute one it can trust; callers compare it with their own.
* ``get`` returns the whole object; ``get_range`` part of it (Parquet footers and row
  groups); ``list`` yields keys under a prefix in lexicographic order.
* Keys are ``/``-separated relative paths made only of ``[A-Za-z0-9._=/-]``; anything
  else (``..``, absolute paths, empty segments) raises ``ArchiveError`` before any I/O.
* Transient failures raise ``TransientStoreError`` (callers retry with backoff:
  ``ticktape.sinks.objectstore.retry``); anything else raises ``ArchiveError``.

Helpers: :func:`sha256_of` and the key/prefix/checksum checks both stores apply before
any I/O. :func:`ticktape.sinks.objectstore.stores.open_store` opens a store by URL or path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from ticktape.schemas.errors import ArchiveError

_KEY = re.compile(r"^[A-Za-z0-9._=-]+(/[A-Za-z0-9._=-]+)*$")


class TransientStoreError(ArchiveError):
    """A failure worth retrying (connection reset, timeout, 5xx, throttling)."""


class ObjectInfo(NamedTuple):
    key: str
    size: int
    sha256: str  # lowercase hex


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``ArchiveError``."""
    if not is_safe_key(key):
        raise ArchiveError(f"unsafe object key {key!r}: expected [A-Za-z0-9._=-] segments separated by '/'")
    return key


class ObjectStore(Protocol):
    """What the archiver and the readers need from a store (see the module docstring)."""

    @property
    def url(self) -> str:
        """Where the store is (``file:///...`` or ``s3://bucket/prefix``), without secrets."""
        ...

    def put(self, key: str, data: bytes, sha256_hex: str) -> None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...


# -- helpers shared by the implementations --------------------------------------------

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_LIST_PREFIX = re.compile(r"^[A-Za-z0-9._=/-]+$")


def sha256_of(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data`` (what ``put`` expects as ``sha256_hex``)."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, sha256_hex: str, key: str) -> None:
    """Raise ``ArchiveError`` unless ``sha256_hex`` is lowercase hex and the SHA-256 of ``data``.

    Stores call this before any I/O so that an object never lands under a checksum the
    caller did not mean (a caller bug would otherwise be "verified" by its own HEAD).
    """
    if not _SHA256_HEX.match(sha256_hex):
        raise ArchiveError(f"put {key!r}: expected a lowercase hex SHA-256, got {sha256_hex!r}")
    actual = sha256_of(data)
    if actual != sha256_hex:
        raise ArchiveError(f"put {key!r}: data has SHA-256 {actual}, the caller said {sha256_hex}")


def is_safe_key(key: str) -> bool:
    """True if ``check_key`` would accept ``key``."""
    return bool(_KEY.match(key)) and not any(part in (".", "..") for part in key.split("/"))


def check_list_prefix(prefix: str) -> str:
    """Return ``prefix`` if it may start a key (a plain string prefix: ``"stream=tr"``)."""
    if prefix and not _LIST_PREFIX.match(prefix):
        raise ArchiveError(f"list: unsafe prefix {prefix!r}")
    return prefix


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` normalised to ``""`` or ``"<safe key>/"`` (store roots, S3 prefixes)."""
    stripped = prefix.rstrip("/")
    return f"{check_key(stripped)}/" if stripped else ""
