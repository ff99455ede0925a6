"""Object stores for the archive: the interface every store implements.

Implementations: ``sinks.objectstore_local.LocalObjectStore`` (a directory: the embedded
default) and ``sinks.objectstore_s3.S3ObjectStore`` (boto3; AWS S3 or MinIO via
``endpoint_url``). Both honour the same contract, which is what the archive protocol
(DESIGN section 5) relies on:

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
  ``sinks.retry``); anything else raises ``ArchiveError``.

Helpers: :func:`open_store` (a URL, path or ``S3Config`` -> a store), :func:`sha256_of`
and the key/prefix/checksum checks both stores apply before any I/O.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import msgspec

from schemas.errors import ArchiveError, ConfigError

if TYPE_CHECKING:
    from sinks.objectstore_s3 import S3Config

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


def open_store(target: str | os.PathLike[str] | S3Config, *, s3: S3Config | None = None) -> ObjectStore:
    """Open the store named by ``target``.

    * ``s3://bucket/prefix`` -> :class:`~sinks.objectstore_s3.S3ObjectStore`; ``s3`` (an
      ``[archive.s3]`` section) supplies the endpoint, region and client settings, the URL
      the bucket and prefix.
    * an ``S3Config`` -> the store it describes.
    * ``file:///dir`` or a plain path -> :class:`~sinks.objectstore_local.LocalObjectStore`.

    A malformed or unsupported target raises ``ConfigError``.
    """
    from sinks.objectstore_s3 import S3Config, S3ObjectStore

    if isinstance(target, S3Config):
        return S3ObjectStore.from_config(target)
    text = os.fspath(target)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme == "s3":
        if not parsed.netloc or parsed.query or parsed.fragment:
            raise ConfigError(f"expected s3://bucket[/prefix], got {text!r}")
        try:
            base = s3 or S3Config(bucket=parsed.netloc)
            config = msgspec.structs.replace(base, bucket=parsed.netloc, prefix=parsed.path.lstrip("/"))
        except ValueError as exc:
            raise ConfigError(f"{text}: {exc}") from None
        return S3ObjectStore.from_config(config)
    from sinks.objectstore_local import LocalObjectStore

    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URLs must be local (file:///path), got {text!r}")
        return LocalObjectStore(Path(urllib.parse.unquote(parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" on Windows is a drive, not a scheme
        raise ConfigError(f"unsupported object store URL {text!r}: expected s3://, file:// or a path")
    return LocalObjectStore(Path(text))
